"""Shared by the tests that wait on real processes: every wait has a deadline."""

import time


def wait_until(predicate, timeout: float, what: str, poll: float = 0.2):
    """The first truthy value of `predicate()`, polled every `poll` s; fails after `timeout` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def grey_images(n: int = 4, seed: int = 1):
    """n random 32×32 one-channel images: the CPU presets' input."""
    import torch

    return torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def one_training_step(model, x, y) -> set[str]:
    """One AdamW step on (x, y); asserts a finite loss and returns the state entries it changed."""
    import torch

    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    return {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
