"""report.html: self-contained, every row in a sortable table, every plot inline; opened in headless Chromium
(Debian's `chromium`) when one is installed. ZOO_SCREENSHOT_DIR keeps the screenshot for a person to look at."""

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from zoo.bench.html import write_html
from zoo.bench.plots import render_plots
from zoo.core.cards import BenchRow

ENV = {"date": "2026-12-02T01:00:00+00:00", "cpu": "AMD EPYC, 2 cores, AVX512-BF16", "gpu": None,
       "providers": ["cpu"], "threads": 2, "onnxruntime": "1.31.1", "torch": "2.14.1", "zoo": "0.x",
       "git_sha": "abc1234", "load_before": 0.1, "load_after": 0.2,
       "config": {"warmup": 20, "runs": 200, "batch": 256}}


def rows():
    common = dict(dataset="cifar10", provider="cpu", eval_set="test split (10000)", params=272474, macs=41_000_000,
                  threads=2, onnx_mb=1.1, throughput_batch=256, latency_iqr_rel=0.03)
    return [
        BenchRow("resnet20", precision="fp32", runtime="onnxruntime", top1=90.94, latency_ms_p50=0.62,
                 throughput_img_s=2196.0, torch_agreement=100.0, **common),
        BenchRow("resnet20", precision="fp32", runtime="openvino (bf16)", top1=90.90, latency_ms_p50=0.41,
                 throughput_img_s=4686.0, torch_agreement=99.6, **common),
        BenchRow("resnet20", precision="int8", runtime="onnxruntime", top1=89.90, top1_change=-1.04,
                 latency_ms_p50=0.55, throughput_img_s=3000.0, torch_agreement=97.0,
                 flags=["accuracy -1.04 pt vs PyTorch fp32"], **common),
        BenchRow("cnn", "mnist", "-", "-", error="the parity gate needs 1000 real mnist images"),
    ]


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.imgs, self.links, self._row = [], [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self._row = []
        elif tag == "img":
            self.imgs.append(a.get("src", ""))
        elif tag in ("link", "script") and (a.get("href") or a.get("src")):
            self.links.append(a.get("href") or a.get("src"))
        elif tag == "td" and self._row is not None:
            self._row.append("")

    def handle_data(self, data):
        if self._row:
            self._row[-1] += data

    def handle_endtag(self, tag):
        if tag == "tr" and self._row:
            self.rows.append(self._row)
            self._row = None


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    report = {"environment": ENV, "rows": rows(),
              "notes": ["cifar10: accuracy measured on zoo's shipped 1,000-image sample, not the test split: X"]}
    plots = render_plots(report, out)
    return write_html(report, out, plots), plots


def test_the_page_holds_every_row_and_plot_and_needs_no_network(page):
    path, plots = page
    parsed = _Cells()
    parsed.feed(path.read_text())
    assert len(parsed.rows) == len(rows()) and {r[0] for r in parsed.rows} == {"resnet20", "cnn"}
    assert len(plots) >= 2 and len(parsed.imgs) == len(plots) and all(s.startswith("data:image/png;base64,")
                                                                     for s in parsed.imgs)
    assert parsed.links == []  # nothing fetched: no stylesheet, script or image from elsewhere
    text = path.read_text()
    assert "accuracy measured on zoo&#x27;s shipped 1,000-image sample" in text and "class='loud'" in text
    assert "not measured: the parity gate" in text and "AMD EPYC, 2 cores, AVX512-BF16" in text


def _chromium():
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if exe is None:
        pytest.skip("no headless browser: apt-get install chromium to render report.html in the tests")
    return exe


def _run(exe, *args):
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120)


def test_chromium_renders_the_table_sorts_it_and_draws_every_plot(page, tmp_path):
    exe = _chromium()
    path, plots = page
    dom = _run(exe, "--virtual-time-budget=5000", "--dump-dom", f"{path.as_uri()}#sort=top1").stdout
    assert f'data-plots-rendered="{len(plots)}"' in dom  # every image decoded (naturalWidth > 0)
    parsed = _Cells()
    parsed.feed(dom)
    top1 = [r[5] for r in parsed.rows]
    assert top1 == ["89.90", "90.90", "90.94", "-"]  # sorted ascending by top-1; a row without one last
    shot = tmp_path / "report.png"
    _run(exe, "--window-size=1500,1800", f"--screenshot={shot}", path.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000
    keep = os.environ.get("ZOO_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "report_html.png")
    assert re.search(r"sorted-asc", dom)
