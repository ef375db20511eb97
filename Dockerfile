# zoo serve in a container: the light install (onnxruntime, no PyTorch: about 0.6 GB) and the shipped weights.
#   docker build -t zoo-serve .
#   docker run --rm -p 8000:8000 -e ZOO_SERVE_TOKEN=s3cret zoo-serve           # resnet20 cifar10, the page at /
#   docker run --rm -p 8000:8000 -v "$PWD/exports:/models:ro" zoo-serve \
#       zoo serve /models/resnet20.cifar10.onnx --host 0.0.0.0 --port 8000      # a file zoo export wrote
# Probes (Kubernetes or any orchestrator): liveness GET /healthz; readiness GET /readyz, 200 only once the model
# is loaded and warmed. SIGTERM (docker stop, a pod's end) stops accepting, finishes what is in flight (up to
# 30 s), exits 0. The suite runs this recipe's commands in a light install (tests/test_serve.py).
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY zoo/ zoo/
COPY weights/ weights/
RUN pip install --no-cache-dir '.[serve]' && rm -rf /src
WORKDIR /home/zoo
RUN useradd --home-dir /home/zoo zoo && chown zoo /home/zoo
USER zoo
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
CMD ["zoo", "serve", "resnet20", "cifar10", "--host", "0.0.0.0", "--port", "8000"]
