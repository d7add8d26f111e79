"""Seq2CNN MLPerf Inference system-under-test (sentiment analysis on IMDB)."""

from setuptools import find_packages, setup

setup(
    name="seq2cnn-mlperf",
    version="0.1.0",
    description="MLPerf Inference system-under-test for Seq2CNN sentiment analysis on IMDB, driven by LoadGen",
    # Every CPython for which all the dependencies have wheels (LoadGen has none for 3.14); the Makefile refuses
    # the others before it installs anything. Tested: 3.11.7 (CI), 3.11.2 (the Docker check), 3.12 and 3.13.
    python_requires=">=3.11,<3.14",
    packages=find_packages(include=["common", "common.*", "qsl", "qsl.*", "model", "model.*", "readback", "readback.*", "sut", "sut.*", "tools", "tools.*"]),
    package_data={"model": ["seq2cnn.safetensors", "seq2cnn.safetensors.sha256", "vocab.json", "MODEL.md"]},
    install_requires=[
        # Install the torch build for your machine first (CPU or CUDA); 2.13.0 is the tested release.
        "torch>=2.3,<2.14",
        "numpy>=1.26,<3",
        # Tokenization depends on spaCy's rules: the token cache is keyed by the spaCy version.
        "spacy>=3.7,<3.9",
        "pyyaml>=6.0,<7",
        "safetensors>=0.4,<1",
        "tqdm>=4.66,<5",
        # the releases that run with the random seeds of the MLPerf Inference v6.1 rules (readback/rules.py), whose
        # submission layout tools/submission/pack.py writes: 6.0.15 and earlier carry earlier rounds' seeds
        "mlcommons-loadgen>=6.0.16,<6.1",
        # run.json: typed reading and writing of the run record (readback/run_record.py)
        "pydantic>=2.6,<3",
        # the fused kernel of the folded backend
        "numba>=0.59,<1",
        # LoadGen's C API (queries and responses as arrays), found in its library's symbol table (sut/loadgen_c_api.py)
        "pyelftools>=0.29,<1",
        # the figures of the run report (tools/report/)
        "matplotlib>=3.8,<4",
    ],
    extras_require={
        "test": ["pytest>=8,<10"],
        # run.py --ray: the SUT's batches on Ray actors (sut/ray_pool.py); 2.60 is the tested release
        "ray": ["ray>=2.40,<3"],
        # the folded backend's CUDA kernel (model/triton_folded.py); without a GPU its tests run it in Triton's
        # interpreter. A CUDA build of torch brings the Triton it was built with, which this accepts.
        "gpu": ["triton>=3.2,<4"],
        # python -m model.export_onnx and the onnxruntime-* backends (model/onnx_backends.py); tested: onnx 1.23,
        # onnxruntime 1.32
        "onnx": ["onnx>=1.16,<2", "onnxruntime>=1.18,<2"],
        # ONNX Runtime's CUDA and TensorRT providers: onnxruntime-gpu replaces onnxruntime (install one or the other)
        "onnx-gpu": ["onnx>=1.16,<2", "onnxruntime-gpu>=1.18,<2"],
        # the openvino-* backends (model/onnx_backends.py); tested: OpenVINO 2026.4
        "openvino": ["onnx>=1.16,<2", "openvino>=2024.0,<2027"],
    },
)
