"""zoo serve as a client meets it: a real server on loopback, real images, its limits, its counters, its page,
and a SIGTERM that finishes what is in flight. Load is bounded: a few dozen requests, seconds each."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="zoo serve's extra (starlette, uvicorn) is not installed")

SAMPLES = Path(__file__).resolve().parents[1] / "weights" / "samples" / "mnist"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args, env=None, source=("cnn", "mnist"), python=sys.executable, cwd=None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(python), "-m", "zoo.cli", "serve", *source, "--port", str(self.port), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                                     env={**os.environ, **(env or {})})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.proc.kill()
        raise AssertionError(self.proc.communicate()[1][-2000:])

    def request(self, path, data=None, headers=None, method=None):
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def get(self, path):
        return self.request(path)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    s = Server("--max-wait-ms", "40", "--max-batch", "16")
    yield s
    assert s.stop() == 0  # SIGTERM: stops accepting, finishes what is in flight, exits 0


def _multipart(files: list[Path]) -> tuple[bytes, str]:
    boundary = "zooboundary7"
    parts = [(f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{f.name}\"\r\n"
              f"Content-Type: image/png\r\n\r\n").encode() + f.read_bytes() + b"\r\n" for f in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_one_image_as_the_body_and_several_as_multipart(server):
    status, body, _ = server.request("/v1/predict?top_k=2", (SAMPLES / "7_1_dark-on-light.png").read_bytes())
    answer = json.loads(body)
    assert status == 200 and answer["model"] == "cnn.mnist" and answer["runtime"] and answer["precision"] == "fp32"
    assert answer["predictions"][0]["top"][0]["class"] == "7" and answer["predictions"][0]["inverted"] is True
    assert len(answer["predictions"][0]["top"]) == 2 and answer["card"]["top1"] == 99.18
    files = sorted(SAMPLES.glob("*_0.png"))
    data, kind = _multipart(files)
    status, body, _ = server.request("/v1/predict?top_k=1", data, {"Content-Type": kind})
    preds = json.loads(body)["predictions"]
    assert status == 200 and [p["file"] for p in preds] == [f.name for f in files]
    assert sum(p["top"][0]["class"] == p["file"][0] for p in preds) >= 8


def test_concurrent_requests_are_batched_and_answered_as_alone(server):
    images = [f.read_bytes() for f in sorted(SAMPLES.glob("*.png"))[:6]]
    alone = [json.loads(server.request("/v1/predict?top_k=3", image)[1])["predictions"][0]["top"] for image in images]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: server.request("/v1/predict?top_k=3", images[i % 6]), range(24)))
    assert all(status == 200 for status, _, _ in answers)
    for i, (_, body, _) in enumerate(answers):  # a batch's answers are each image's own, in its request
        together = json.loads(body)["predictions"][0]["top"]
        assert [t["class"] for t in together] == [t["class"] for t in alone[i % 6]]
        assert max(abs(t["probability"] - a["probability"]) for t, a in zip(together, alone[i % 6])) < 1e-4
    metrics = server.get("/metrics")[1].decode()
    count = float(next(ln.split()[-1] for ln in metrics.splitlines() if ln.startswith("zoo_batch_images_count")))
    total = float(next(ln.split()[-1] for ln in metrics.splitlines() if ln.startswith("zoo_batch_images_sum")))
    assert count < total  # fewer model calls than images: requests ran together
    assert 'zoo_requests_total{route="/v1/predict",status="200"}' in metrics


@pytest.mark.parametrize("data, headers, status, said", [
    (b"not an image", {}, 400, "not an image zoo reads"),
    (b"", {}, 400, "no image"),
    (b"x", {"Content-Type": "multipart/form-data; boundary=b"}, 400, "multipart"),
])
def test_bad_input_is_a_4xx_with_one_line_of_json(server, data, headers, status, said):
    got, body, _ = server.request("/v1/predict", data, headers)
    error = json.loads(body)["error"]
    assert got == status and said in error and "\n" not in error and "Traceback" not in error


def test_the_model_the_page_and_the_api_description(server):
    model = json.loads(server.get("/v1/model")[1])
    assert model["classes"][:3] == ["0", "1", "2"] and model["input"]["size"] == 28
    page = server.get("/")[1].decode()
    assert "v1/predict" in page and "<input type=\"file\"" in page
    spec = json.loads(server.get("/openapi.json")[1])
    assert "/v1/predict" in spec["paths"] and "503" in spec["paths"]["/v1/predict"]["post"]["responses"]
    assert server.get("/healthz")[0] == 200


def test_limits_token_body_and_queue():
    s = Server("--max-body-mb", "0.001", "--queue", "1", env={"ZOO_SERVE_TOKEN": "s3cret"})
    try:
        image = (SAMPLES / "1_0.png").read_bytes()
        assert s.request("/v1/predict", image)[0] == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert s.request("/v1/predict", image, auth)[0] == 200
        status, body, _ = s.request("/v1/predict", b"x" * 5000, auth)
        assert status == 413 and "over the limit" in json.loads(body)["error"]
        data, kind = _multipart([SAMPLES / "1_0.png", SAMPLES / "2_0.png"])
        status, body, headers = s.request("/v1/predict", data, {**auth, "Content-Type": kind})
        assert status in (413, 503)  # two images: over the body limit or the queue's one
        assert s.request("/v1/predict", image, auth)[0] == 200  # the server goes on
    finally:
        assert s.stop() == 0


def test_a_full_queue_answers_503_with_retry_after():
    """Two images wait for a batch (held open 1.5 s); a third, while they wait, finds the queue of two full. So
    does a body that is no image: refused before it is read, a 503 past saturation costs less than an answer."""
    s = Server("--queue", "2", "--max-wait-ms", "1500")
    try:
        data, kind = _multipart([SAMPLES / "1_0.png", SAMPLES / "2_0.png"])
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(s.request, "/v1/predict", data, {"Content-Type": kind})
            time.sleep(0.5)
            status, body, headers = s.request("/v1/predict", (SAMPLES / "3_0.png").read_bytes())
            unread = s.request("/v1/predict", b"not an image")[0]
            assert first.result()[0] == 200
        assert status == 503 and headers.get("retry-after", headers.get("Retry-After")) == "1" and unread == 503
        assert "queued" in json.loads(body)["error"]
        assert 'zoo_rejects_total{reason="queue"} 2.0' in s.get("/metrics")[1].decode()
    finally:
        assert s.stop() == 0


def test_it_listens_on_this_machine_only_unless_asked():
    from zoo.cli import build_parser

    assert build_parser().parse_args(["serve", "cnn", "mnist"]).host == "127.0.0.1"


def _browser():
    """Chromium, headless, through selenium; the test skips, saying why, where either is missing."""
    import shutil

    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (a dev dependency) is not installed")
    from selenium.webdriver.chrome.service import Service

    exe, driver_exe = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (exe and driver_exe):
        pytest.skip("no headless browser: apt-get install chromium chromium-driver to drive the page in the tests")
    opts = webdriver.ChromeOptions()
    opts.binary_location = exe
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_exe), options=opts)


def test_the_page_reads_a_digit_drawn_dark_on_light_in_a_real_browser(server):
    """Chromium, headless, drives the page as a person would: choose a file, read the label it shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get(server.url + "/")
        WebDriverWait(browser, 30).until(lambda b: "cnn.mnist: 10 classes" in b.find_element(By.ID, "card").text)
        browser.find_element(By.ID, "files").send_keys(str(SAMPLES / "7_1_dark-on-light.png"))
        label = WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".result .label"))
        assert label[0].text == "7_1_dark-on-light.png: 7 (read inverted)"
        assert len(browser.find_elements(By.CSS_SELECTOR, ".result .bar")) == 5  # the top-5 as bars
    finally:
        browser.quit()


def test_the_page_asks_for_the_token_of_a_server_that_needs_one():
    """A server started with ZOO_SERVE_TOKEN: the page asks for it (and says when it was wrong), then reads the
    card and classifies with it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    s = Server(env={"ZOO_SERVE_TOKEN": "s3cret"})
    browser = _browser()
    try:
        browser.get(s.url + "/")
        form = WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "token-form"))
        WebDriverWait(browser, 30).until(lambda b: form.is_displayed())
        for attempt in ("wrong", "s3cret"):
            browser.find_element(By.ID, "token").clear()
            browser.find_element(By.ID, "token").send_keys(attempt)
            form.submit()
            if attempt == "wrong":
                WebDriverWait(browser, 30).until(
                    lambda b: b.find_element(By.ID, "token-error").text == "that token was refused")
        WebDriverWait(browser, 30).until(lambda b: "cnn.mnist: 10 classes" in b.find_element(By.ID, "card").text)
        browser.find_element(By.ID, "files").send_keys(str(SAMPLES / "3_0.png"))
        label = WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".result .label"))
        assert label[0].text.startswith("3_0.png: ")  # a prediction came back: the token went with the images
    finally:
        browser.quit()
        assert s.stop() == 0


def test_refusals_that_waiting_cannot_cure_are_413_and_every_error_is_json():
    s = Server("--queue", "2", "--max-images", "3")
    try:
        data, kind = _multipart([SAMPLES / f"{d}_0.png" for d in range(4)])
        status, body, _ = s.request("/v1/predict", data, {"Content-Type": kind})
        assert status == 413 and "over the limit of 3 images" in json.loads(body)["error"]
        data, kind = _multipart([SAMPLES / f"{d}_0.png" for d in range(3)])
        status, body, _ = s.request("/v1/predict", data, {"Content-Type": kind})
        assert status == 413 and "more than the queue holds (2)" in json.loads(body)["error"]
        for path, method, code in (("/nowhere", "GET", 404), ("/v1/predict", "GET", 405),
                                   ("/v1/predict?top_k=0", "POST", 400)):
            status, body, _ = s.request(path, b"x" if method == "POST" else None, method=method)
            assert status == code and json.loads(body)["error"], (path, body)
    finally:
        assert s.stop() == 0


def _children(pid: int) -> list[int]:
    """The live child processes of `pid` (Linux's /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts processes through Linux's /proc")
def test_workers_answer_from_several_processes_and_stop_together_on_sigterm():
    s = Server("--workers", "2")
    try:
        workers = _children(s.proc.pid)
        assert len(workers) >= 2, workers
        png = (SAMPLES / "3_0.png").read_bytes()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: s.request("/v1/predict", png), range(12)))
        assert all(status == 200 for status, _, _ in answers)
        tops = {json.dumps(json.loads(body)["predictions"][0]["top"]) for _, body, _ in answers}
        assert len(tops) == 1  # every process runs the same model: one answer, to the last digit
    finally:
        assert s.stop() == 0
    deadline = time.monotonic() + 10
    while [w for w in workers if Path(f"/proc/{w}").exists()] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [w for w in workers if Path(f"/proc/{w}").exists()]  # none left behind


def test_small_images_are_decoded_on_the_event_loop_and_a_large_one_on_the_thread_pool(monkeypatch):
    """A CIFAR-sized PNG costs less to decode than to hand to a thread; a photo would stall every other request."""
    import asyncio
    import io
    import threading

    import numpy as np
    from PIL import Image

    from zoo.serve import app as app_mod
    from zoo.serve import service

    svc, on_loop, real = service("cnn", "mnist"), [], app_mod.decode
    monkeypatch.setattr(app_mod, "decode", lambda *a: on_loop.append(threading.current_thread()
                                                                       is threading.main_thread()) or real(*a))
    big = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8)).save(big, "PNG")
    assert big.tell() > app_mod.INLINE_BYTES

    async def ask():
        async with svc._lifespan(svc.app):
            for data in ((SAMPLES / "1_0.png").read_bytes(), big.getvalue()):
                assert (await svc._answer([("image", data)], 1)).status_code == 200
    asyncio.run(ask())
    assert on_loop == [True, False]


# ---------------------------------------------------------------- the light install, for real
LIGHT_OUT = ("torch", "torchvision", "timm", "onnx", "matplotlib")


@pytest.mark.e2e
def test_the_light_install_serves_predicts_and_benches_an_exported_file(tmp_path):
    """pip install 'zoo-classifiers[serve]' into a fresh venv (the wheel built from this checkout, its
    dependencies from the package index, which pip's cache serves after CI's install): none of torch, onnx,
    matplotlib arrive, and an .onnx file is served, predicted from and benched."""
    repo = Path(__file__).resolve().parents[1]
    dist, venv = tmp_path / "dist", tmp_path / "light"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(repo)], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    wheel = next(dist.glob("zoo_classifiers-*.whl"))
    done = subprocess.run([str(py), "-m", "pip", "install", "-q", f"{wheel}[serve]"], capture_output=True, text=True)
    if done.returncode and ("No matching distribution" in done.stderr or "connection" in done.stderr.lower()):
        pytest.skip(f"no package index here: {done.stderr.strip().splitlines()[-1][:200]}")
    assert done.returncode == 0, done.stderr[-2000:]
    there = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in " + repr(LIGHT_OUT)
                            + " if u.find_spec(m)])"], capture_output=True, text=True, check=True).stdout.strip()
    assert there == "[]", there
    onnx = next((repo / "weights" / "exports").glob("*/resnet20.cifar10.onnx"))
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    zoo = [str(venv / "bin" / "zoo")]
    sample = repo / "weights" / "samples" / "cifar10" / "cat_0.png"
    said = subprocess.run([*zoo, "predict", str(onnx), str(sample), "--json"], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=tmp_path)
    assert said.returncode == 0 and json.loads(said.stdout)[0]["top"][0]["class"] == "cat", said.stderr[-1000:]
    bench = subprocess.run([*zoo, "bench", "--onnx", str(onnx), "--out", str(tmp_path / "bench")], capture_output=True,
                           text=True, env={**os.environ, **env}, cwd=tmp_path)
    assert bench.returncode == 0, bench.stderr[-1500:]
    rows = json.loads((tmp_path / "bench" / "report.json").read_text())["rows"]
    from zoo.core.shipped import get_card

    assert rows[0]["runtime"] == "onnxruntime" and rows[0]["top1"] > 85, rows  # the shipped sample, without torch
    assert rows[0]["params"] == get_card("resnet20", "cifar10").num_params and rows[0]["macs"] > 0  # its metadata
    s = Server(source=(str(onnx),), python=py, env=env, cwd=tmp_path)
    try:
        status, body, _ = s.request("/v1/predict", sample.read_bytes())
        assert status == 200 and json.loads(body)["predictions"][0]["top"][0]["class"] == "cat", body
    finally:
        assert s.stop() == 0
    _the_container_recipe_runs(repo / "Dockerfile", venv, env, tmp_path)


def _the_container_recipe_runs(dockerfile: Path, venv: Path, env: dict, cwd: Path) -> None:
    """The Dockerfile's own commands in the light install (no container engine needed): it installs the extras
    this install has, its CMD serves (on loopback here, not 0.0.0.0), its HEALTHCHECK passes once the model is
    ready, and SIGTERM ends it with status 0."""
    lines = dockerfile.read_text().splitlines()
    assert any(line.startswith("RUN pip install") and "'.[serve]'" in line for line in lines)
    cmd = json.loads(next(line for line in lines if line.startswith("CMD "))[4:])
    probe = json.loads(next(line for line in lines if line.startswith("HEALTHCHECK ")).split(" CMD ", 1)[1])
    port = str(_free_port())
    cmd = [str(venv / "bin" / cmd[0]), *cmd[1:]]
    cmd[cmd.index("--host") + 1], cmd[cmd.index("--port") + 1] = "127.0.0.1", port
    probe = [str(venv / "bin" / probe[0]), *(a.replace(":8000/", f":{port}/") for a in probe[1:])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(probe, capture_output=True).returncode and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1][-1500:]
            time.sleep(0.5)
        assert subprocess.run(probe, capture_output=True).returncode == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0, proc.communicate()[1][-1500:]


# ---------------------------------------------------------------- past one machine: Ray Serve
RAY_SCRIPT = '''
import json, shutil, sys, tempfile, urllib.request
import ray
from ray import serve
from zoo.core.errors import ZooError
from zoo.serve.rayserve import app

port, images = int(sys.argv[1]), sys.argv[2:]
temp = tempfile.mkdtemp(prefix="zoo-ray-")  # Ray's sockets: a short path of their own, removed after
out = {"refused": []}
for bad in ({"dataset": "mnist"}, {"source": "cnn", "dataset": "mnist", "max_batch": "0"}, {"source": "nonet"},
            {"source": "cnn", "dataset": "mnist", "colour": "red"}):
    try:
        app(bad)
    except ZooError as e:
        out["refused"].append(str(e))
try:
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(app({"source": "cnn", "dataset": "mnist", "replicas": "2", "cpus": "0.5", "max_batch": "8"}),
              route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    out["ready"] = urllib.request.urlopen(url + "/readyz", timeout=30).status
    out["model"] = json.load(urllib.request.urlopen(url + "/v1/model", timeout=30))
    out["answers"] = [json.load(urllib.request.urlopen(urllib.request.Request(
        url + "/v1/predict?top_k=1", data=open(f, "rb").read()), timeout=30)) for f in images]
    out["page"] = urllib.request.urlopen(url + "/", timeout=30).read().decode()[:200]
    out["replicas"] = serve.status().applications["default"].deployments["zoo"].replica_states
finally:
    serve.shutdown()
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
print(json.dumps(out, default=str))
'''


@pytest.mark.e2e
def test_ray_serve_runs_the_same_application_on_a_local_ray(tmp_path):
    """zoo.serve.rayserve on a local Ray: two replicas behind Ray's proxy answer as zoo serve does (the same
    classes, the same page, ready only once loaded); a bad source or limit is one line before Ray is asked.
    Ray's own services listen on every interface, so the test runs them in a network namespace of their own,
    where only loopback exists."""
    pytest.importorskip("ray.serve", reason="the ray extra is not installed")
    import shutil

    if not (shutil.which("unshare") and shutil.which("ip")) or \
            subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode:
        pytest.skip("no network namespace can be made here (unshare -rn), and Ray's services listen on every "
                    "interface")
    script = tmp_path / "ray_serve.py"
    script.write_text(RAY_SCRIPT)
    images = sorted(SAMPLES.glob("*.png"))[:3]
    from zoo.predict.predictor import Predictor

    expected = [p.top[0][0] for p in Predictor("cnn", "mnist").predict([str(f) for f in images], top_k=1)]
    done = subprocess.run(["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable,
                           str(script), str(_free_port()), *map(str, images)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert [len(r.splitlines()) for r in out["refused"]] == [1, 1, 1, 1], out["refused"]
    assert "source=" in out["refused"][0] and "max_batch=0" in out["refused"][1] and "colour" in out["refused"][3]
    assert out["ready"] == 200 and out["model"]["model"] == "cnn.mnist" and out["replicas"] == {"RUNNING": 2}
    assert [a["predictions"][0]["top"][0]["class"] for a in out["answers"]] == expected
    assert "<html" in out["page"].lower()
