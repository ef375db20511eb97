"""Inference: onnxruntime vs PyTorch eager batch-1 latency, and int8 vs fp32 throughput at batch 256.

Targets (2-core CPU, resnet20 CIFAR-shaped): ORT fp32 batch-1 >= 4x faster than eager; int8 throughput at
batch 256 >= 2.5x fp32 (with <= 0.5 pt accuracy loss on real data, checked by zoo bench).
"""

import numpy as np
import pytest

from zoo.bench.backends import OrtBackend, TorchBackend


@pytest.fixture(scope="module")
def resnet20(tmp_path_factory, data_root):
    import torch

    from zoo.data import DataOptions
    from zoo.export import export
    from zoo.models import create_model

    root, _ = data_root
    out = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    model = create_model("resnet20", "cifar10").eval()
    from safetensors.torch import save_file
    save_file(model.state_dict(), str(out / "w.safetensors"))
    fp32 = export("resnet20", "cifar10", weights=out / "w.safetensors", out=out, data=DataOptions(root)).path
    int8 = export("resnet20", "cifar10", weights=out / "w.safetensors", out=out, precision="int8",
                  int8_max_drop=100, data=DataOptions(root)).path
    return model, fp32, int8


X1 = np.random.default_rng(0).standard_normal((1, 3, 32, 32), np.float32)
X256 = np.random.default_rng(0).standard_normal((256, 3, 32, 32), np.float32)


def test_latency_ort_fp32(benchmark, resnet20):
    be = OrtBackend().load(resnet20[1])
    benchmark(be.predict, X1)


def test_latency_torch_eager(benchmark, resnet20):
    be = TorchBackend().load(resnet20[0])
    benchmark(be.predict, X1)


def test_throughput_ort_fp32_b256(benchmark, resnet20):
    be = OrtBackend().load(resnet20[1])
    benchmark.pedantic(be.predict, args=(X256,), rounds=10, warmup_rounds=1)


def test_throughput_ort_int8_b256(benchmark, resnet20):
    be = OrtBackend().load(resnet20[2])
    benchmark.pedantic(be.predict, args=(X256,), rounds=10, warmup_rounds=1)
