import pytest
import torch

# Two cores: keep tests from oversubscribing them.
torch.set_num_threads(2)


@pytest.fixture(autouse=True, scope="session")
def data_cache(tmp_path_factory):
    """Rendered datasets go to a folder of the test session, never the user's ~/.cache/vitbench; the
    data root is an empty folder, so a user's real datasets in ~/data are never listed or read."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VITBENCH_DATA_CACHE", str(tmp_path_factory.mktemp("data-cache")))
        mp.setenv("VITBENCH_DATA", str(tmp_path_factory.mktemp("data-root")))
        yield


@pytest.fixture
def tiny_cfg():
    """A run that trains in about a second: the smallest ViT on 256 MNIST images."""
    from benchmark.config import DataConfig, EvalConfig, OptimConfig, RunConfig

    return RunConfig(
        data=DataConfig(dataset="mnist5k", train_examples=256),
        optim=OptimConfig(steps=12, warmup_steps=2, batch_size=32),
        eval=EvalConfig(fewshot_datasets=("digits",), shots=(1, 5), fewshot_seeds=2),
    )
