"""The fast-path probe: interleaved rounds, medians, a stopping rule, busy probes marked provisional and
measured again, `--reprobe`, `zoo list --fastpath`, and the self-check that re-probes during training.
Step times are scripted (no timing in a unit test); the candidates' models are real."""

import json
import multiprocessing
import os
import time

import pytest

from zoo.cli import main
from zoo.core import env
from zoo.train import fastpath
from zoo.train.fastpath import FastPath


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(fastpath, "native_bf16", lambda: True)


class Watch:
    """OthersWatch with a chosen share of the CPU used by other processes."""
    share_next = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.share = Watch.share_next


def script(monkeypatch, seconds, calls=None):
    """Candidates' steps take seconds(path, n) for their n-th call (calls records the order)."""
    counts = {}

    def step(self):
        n = counts[self.path.label] = counts.get(self.path.label, 0) + 1
        if calls is not None:
            calls.append(self.path.label)
        return seconds(self.path, n)

    monkeypatch.setattr(fastpath._Candidate, "step", step)
    monkeypatch.setattr(fastpath, "OthersWatch", Watch)
    Watch.share_next = 0.0


SPEED = {"fp32": 0.10, "fp32+cl": 0.08, "bf16+cl": 0.05}  # seconds per step
CLOSE = {"fp32": 0.07, "fp32+cl": 0.06, "bf16+cl": 0.05}  # within DOMINATED of each other: all timed throughout


@pytest.mark.parametrize("native", [False, True])
def test_bf16_is_timed_only_with_native_bf16(monkeypatch, native):
    monkeypatch.setattr(fastpath, "native_bf16", lambda: native)
    script(monkeypatch, lambda p, n: SPEED[p.label])
    best = fastpath.measure("resnet20", "cifar10", 8, total_images=0, log=lambda s: None)
    assert set(best.candidates) == ({"fp32", "fp32+cl", "bf16+cl"} if native else {"fp32", "fp32+cl"})
    assert best.label == ("bf16+cl" if native else "fp32+cl") and not best.provisional
    assert best.images_per_s == pytest.approx(8 / SPEED[best.label])


def test_candidates_are_interleaved_and_stop_once_settled(monkeypatch):
    calls = []
    script(monkeypatch, lambda p, n: CLOSE[p.label], calls)
    fastpath.measure("resnet20", "cifar10", 8, total_images=0, log=lambda s: None)
    warm = fastpath.WARMUP * 3
    timed = calls[warm:]
    turn = fastpath.SETTLE + fastpath.STEPS_PER_TURN
    assert timed[:3 * turn] == ["fp32"] * turn + ["fp32+cl"] * turn + ["bf16+cl"] * turn  # A A A B B B C C C
    assert len(timed) == fastpath.MIN_ROUNDS * 3 * turn  # steady medians: the fewest rounds


def test_a_drifting_machine_takes_more_rounds_but_never_more_than_the_cap(monkeypatch):
    calls = []
    script(monkeypatch, lambda p, n: CLOSE[p.label] * (1 + 0.05 * n), calls)  # 5% slower every step
    fastpath.measure("resnet20", "cifar10", 8, total_images=0, log=lambda s: None)
    rounds = (len(calls) - fastpath.WARMUP * 3) // (3 * (fastpath.SETTLE + fastpath.STEPS_PER_TURN))
    assert rounds == fastpath.MAX_ROUNDS


def test_a_candidate_far_behind_is_not_timed_on_and_keeps_its_figure(monkeypatch):
    """Plain fp32 at twice bf16's step time, fp32+cl at 1.6x: after one round only bf16+cl is timed on."""
    calls = []
    script(monkeypatch, lambda p, n: SPEED[p.label], calls)
    best = fastpath.measure("resnet20", "cifar10", 8, total_images=0, log=lambda s: None)
    turn = fastpath.SETTLE + fastpath.STEPS_PER_TURN
    timed = calls[fastpath.WARMUP * 3:]
    assert timed[3 * turn:] == ["bf16+cl"] * turn * (fastpath.MIN_ROUNDS - 1)
    assert best.label == "bf16+cl" and best.candidates == {k: pytest.approx(8 / s) for k, s in SPEED.items()}


def test_a_spike_in_the_first_round_does_not_drop_a_candidate(monkeypatch):
    """Dropping reads a candidate's fastest step: one 10 s step in bf16+cl's first turn leaves it timed, and it
    wins."""
    script(monkeypatch, lambda p, n: 10.0 if (p.label == "bf16+cl" and n == fastpath.WARMUP + 2) else CLOSE[p.label])
    assert fastpath.measure("resnet20", "cifar10", 8, total_images=0, log=lambda s: None).label == "bf16+cl"


def test_the_probe_steps_at_most_probe_batch_images(monkeypatch):
    sizes = []
    real = fastpath._Candidate.__init__
    monkeypatch.setattr(fastpath._Candidate, "__init__",
                        lambda self, a, d, batch, p: sizes.append(batch) or real(self, a, d, batch, p))
    script(monkeypatch, lambda p, n: SPEED[p.label])
    best = fastpath.measure("cnn", "mnist", 1024, total_images=0, log=lambda s: None)
    assert set(sizes) == {fastpath.PROBE_BATCH} and best.batch == fastpath.PROBE_BATCH
    assert best.images_per_s == pytest.approx(fastpath.PROBE_BATCH / SPEED["bf16+cl"])


def test_a_one_off_spike_does_not_fool_the_probe(monkeypatch):
    """A 10 s step (a JIT hiccup, another process) in the fastest candidate moves its median by one rank."""
    def seconds(p, n):
        return 10.0 if (p.label == "bf16+cl" and n == fastpath.WARMUP + 2) else SPEED[p.label]  # a timed step
    script(monkeypatch, seconds)
    best = fastpath.measure("resnet20", "cifar10", 8, total_images=0, log=lambda s: None)
    assert best.label == "bf16+cl"


def _compile_script(monkeypatch, pair_eager_s: float, compiled_s: float):
    """bf16+cl steps in 0.07 s in the first rounds and in pair_eager_s beside its compiled twin (a machine that
    sped up, or caches that warmed), which steps in compiled_s."""
    first_bf16 = []

    def step(self):
        if self.path.compile:
            return compiled_s
        if self.path.label == "bf16+cl":
            if not first_bf16:
                first_bf16.append(self)
            return 0.07 if self is first_bf16[0] else pair_eager_s
        return SPEED[self.path.label]

    monkeypatch.setattr(fastpath._Candidate, "step", step)
    monkeypatch.setattr(fastpath, "OthersWatch", Watch)
    Watch.share_next = 0.0


@pytest.mark.parametrize("compiled_s, chosen", [(0.048, "bf16+cl"), (0.04, "bf16+cl+compile")])
def test_compile_is_judged_against_eager_in_its_own_rounds_and_both_figures_are_kept(monkeypatch, compiled_s,
                                                                                      chosen):
    """Against the first rounds' 0.07 s compile (0.048 s) would look 1.46x faster; beside it eager steps in
    0.05 s, so it is 1.04x and not taken (it needs 1.1x); at 0.04 s it is 1.25x and taken. The log and the
    record show the eager figure compile was judged against."""
    _compile_script(monkeypatch, pair_eager_s=0.05, compiled_s=compiled_s)
    said = []
    best = fastpath.measure("resnet20", "cifar10", 8, total_images=10**6, log=said.append)
    assert best.label == chosen
    assert best.candidates["bf16+cl"] == pytest.approx(8 / 0.07, rel=1e-3)
    assert best.candidates["bf16+cl beside compile"] == pytest.approx(8 / 0.05, rel=1e-3)
    assert best.candidates["bf16+cl+compile"] == pytest.approx(8 / compiled_s, rel=1e-3)
    ratio = 0.05 / compiled_s
    words = {"bf16+cl": "bf16 + channels_last", "bf16+cl+compile": "bf16 + channels_last + torch.compile"}[chosen]
    assert said[-1].startswith(f"speed: {words}, ")
    assert (f"(torch.compile {ratio:.2f}x on top)" if ratio > 1.1 else
            f"torch.compile only {ratio:.2f}x on top, not used (needs 1.10x)") in said[-1]


def test_a_run_shorter_than_twenty_minutes_never_times_compile(monkeypatch):
    """ZooNet's speedrun (~7 min) must not spend a minute judging torch.compile it cannot repay."""
    _compile_script(monkeypatch, pair_eager_s=0.05, compiled_s=0.01)
    best = fastpath.measure("resnet20", "cifar10", 8, total_images=int(8 / 0.07 * 1100), log=lambda s: None)
    assert best.label == "bf16+cl" and not any("compile" in k for k in best.candidates)


def test_a_busy_probe_is_provisional_and_measured_again_next_run(monkeypatch):
    slow_bf16 = {"fp32": 0.10, "fp32+cl": 0.08, "bf16+cl": 0.50}  # what a busy machine made bf16 look like
    script(monkeypatch, lambda p, n: slow_bf16[p.label])
    Watch.share_next = 0.6  # another job used 60% of the machine during the probe
    said = []
    first = fastpath.choose("resnet20", "cifar10", "cpu", 8, log=said.append)
    assert first.label == "fp32+cl" and first.provisional
    assert "will re-check next run because other programs used 60% of the CPU" in said[-1]
    script(monkeypatch, lambda p, n: SPEED[p.label])  # the idle machine
    second = fastpath.choose("resnet20", "cifar10", "cpu", 8, log=said.append)
    assert "is provisional (others used 60% of the CPU" in said[-2] and "measuring again" in said[-2]
    assert second.label == "bf16+cl" and not second.provisional
    calls = []
    script(monkeypatch, lambda p, n: SPEED[p.label], calls)
    assert fastpath.choose("resnet20", "cifar10", "cpu", 8, log=said.append) == second and calls == []
    assert fastpath.choose("resnet20", "cifar10", "cpu", 8, reprobe=True, log=said.append).label == "bf16+cl"
    assert calls  # --reprobe measured again


def test_noise_alone_makes_a_decision_provisional(monkeypatch):
    script(monkeypatch, lambda p, n: SPEED[p.label] * (3 if n % 2 else 1))  # every other step 3x slower
    assert fastpath.measure("resnet20", "cifar10", 8, total_images=0, log=lambda s: None).provisional


def test_steps_that_scatter_are_final_once_their_median_is_pinned(monkeypatch):
    """Steps scattered by +-20% (a cloud VM's usual): 6 timed steps leave the median uncertain (+-8%, provisional),
    24 pin it (+-4%): the decision is final and the next run does not measure again."""
    script(monkeypatch, lambda p, n: SPEED[p.label] * (0.8, 1.1, 0.9, 1.2, 1.0)[n % 5])
    few = fastpath.measure("resnet20", "cifar10", 8, total_images=0, log=lambda s: None)
    assert few.noise > 0.15 and few.provisional
    monkeypatch.setattr(fastpath, "MIN_ROUNDS", 12)
    said = []
    many = fastpath.measure("resnet20", "cifar10", 8, total_images=0, log=said.append)
    assert many.noise > 0.15 and not many.provisional and many.label == "bf16+cl"
    assert "re-check" not in said[-1]


def test_a_decision_measured_with_another_allocator_setting_is_measured_again(monkeypatch):
    """Decisions cached before zoo kept freed memory (core/memory.py) hold figures of another allocator."""
    script(monkeypatch, lambda p, n: SPEED[p.label])
    first = fastpath.choose("resnet20", "cifar10", "cpu", 8, log=lambda s: None)
    assert first.freed_memory_kept is fastpath.keep_freed_memory()
    cache = json.loads(fastpath.cache_file().read_text())
    for entry in cache.values():
        del entry["freed_memory_kept"]  # as an entry written before the field existed reads
    fastpath.cache_file().write_text(json.dumps(cache))
    monkeypatch.setattr(fastpath, "keep_freed_memory", lambda: True)
    calls, said = [], []
    script(monkeypatch, lambda p, n: SPEED[p.label], calls)
    again = fastpath.choose("resnet20", "cifar10", "cpu", 8, log=said.append)
    assert calls and again.freed_memory_kept and "measured without freed memory kept" in said[0]
    calls.clear()
    assert fastpath.choose("resnet20", "cifar10", "cpu", 8, log=said.append) == again and calls == []


def test_a_damaged_cache_is_measured_afresh(monkeypatch, tmp_path):
    script(monkeypatch, lambda p, n: SPEED[p.label])
    fastpath.cache_file().parent.mkdir(parents=True, exist_ok=True)
    fastpath.cache_file().write_text("{not json")
    assert fastpath.choose("resnet20", "cifar10", "cpu", 8, log=lambda s: None).label == "bf16+cl"


def test_list_fastpath_shows_the_decisions(monkeypatch, capsys):
    script(monkeypatch, lambda p, n: SPEED[p.label])
    fastpath.choose("resnet20", "cifar10", "cpu", 8, log=lambda s: None)
    assert main(["list", "--fastpath", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["model"], row["input"], row["batch"], row["choice"], row["provisional"]) == \
        ("resnet20", "3x32x32", 8, "bf16+cl", False)
    assert row["images_per_s"] == pytest.approx(160.0) and set(row["candidates"]) == set(SPEED) and row["measured"]
    assert main(["list", "--fastpath"]) == 0 and "bf16+cl" in capsys.readouterr().out


def test_training_re_probes_when_an_epoch_runs_far_below_the_probe(monkeypatch, tmp_path, fake_root):
    """The self-check: the probe claimed far more than epoch 1 ran at, the machine was otherwise idle, so the
    run measures again at the epoch boundary and trains on with the new winner."""
    from helpers import data
    from zoo.train import RuntimeRequest, get_recipe, run, runtime, train
    from zoo.data import get_dataset_spec

    claimed = FastPath("fp32", False, False, images_per_s=1e9)  # a figure no epoch will reach
    better = FastPath("fp32", False, True, images_per_s=500.0)
    probes = []
    monkeypatch.setattr(runtime, "choose", lambda *a, **k: claimed)
    monkeypatch.setattr(run, "choose", lambda *a, **k: probes.append(k) or better)
    monkeypatch.setattr(run, "OthersWatch", Watch)
    Watch.share_next = 0.0
    cfg = get_recipe("fast", get_dataset_spec("mnist"), "cnn", epochs=3)
    s = train("cnn", "mnist", cfg, RuntimeRequest("cpu", "auto", "off"), out=tmp_path / "r", data=data(fake_root),
              progress=False)
    assert probes == [{"reprobe": True}]  # once per run, not every epoch
    cards = [json.loads(p.read_text()) for p in sorted((tmp_path / "r" / "checkpoints").glob("*/card.json"))]
    assert [c["runtime"]["channels_last"] for c in cards][-1] is True and s["runtime"]["channels_last"] is True


def test_a_busy_epoch_does_not_trigger_a_re_probe(monkeypatch, tmp_path, fake_root):
    from helpers import data
    from zoo.train import RuntimeRequest, get_recipe, run, runtime, train
    from zoo.data import get_dataset_spec

    monkeypatch.setattr(runtime, "choose", lambda *a, **k: FastPath("fp32", images_per_s=1e9))
    probes = []
    monkeypatch.setattr(run, "choose", lambda *a, **k: probes.append(k))
    monkeypatch.setattr(run, "OthersWatch", Watch)
    Watch.share_next = 0.5  # others used half the machine: a slow epoch says nothing about the path
    cfg = get_recipe("fast", get_dataset_spec("mnist"), "cnn", epochs=2)
    train("cnn", "mnist", cfg, RuntimeRequest("cpu", "auto", "off"), out=tmp_path / "r", data=data(fake_root),
          progress=False)
    assert probes == []


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc")
def test_a_short_window_is_read_over_its_minimum():
    """CPU time comes in 10-ms units: over a 1-ms window one unit of another process would read as half the
    machine (the bench's rows ask for 0.5 s)."""
    t0 = time.perf_counter()
    with env.OthersWatch(min_window_s=0.3) as w:
        pass
    assert time.perf_counter() - t0 >= 0.3 and 0.0 <= w.share <= 1.0


def _burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
@pytest.mark.parametrize("reaped", [False, True])
def test_own_children_are_not_counted_as_other_processes(reaped):
    """torch.compile's worker processes are zoo's own work: a child's CPU seconds count as zoo's, whether the
    child is still alive when the window closes or was reaped in it (measured in CPU seconds, not wall time)."""
    ctx = multiprocessing.get_context("fork")
    done = ctx.Event()
    child = ctx.Process(target=lambda: (_burn(0.5), done.set(), time.sleep(0 if reaped else 30)))
    before = env._own_tree_seconds()
    child.start()
    try:
        done.wait(20)
        time.sleep(0.05)
        if reaped:
            child.join()
        assert env._own_tree_seconds() - before >= 0.45
    finally:
        child.kill()
        child.join()


def test_a_model_measures_once_per_machine_whatever_the_dataset_or_batch(tmp_path, monkeypatch):
    """A user fine-tuning on a new folder each time measures once per machine, not once per folder: the key is
    the network and the image shape; the classes (CIFAR-10's, CIFAR-100's, a folder's) and the batch are not."""
    from zoo.data import open_folder

    from test_folder import write_images

    a = open_folder(write_images(tmp_path / "pets", classes=("cat", "dog"), size=(32, 32)), log=lambda *_: None)
    b = open_folder(write_images(tmp_path / "birds", classes=("owl", "jay", "emu"), size=(32, 32)),
                    log=lambda *_: None)
    key = fastpath._key
    assert key("resnet20", a.name) == key("resnet20", b.name) == key("resnet20", "cifar10") == \
        key("resnet20", "cifar100")
    assert key("resnet20", a.name) != key("zoonet", a.name) and key("resnet20", "mnist") != key("resnet20", a.name)
    script(monkeypatch, lambda p, n: SPEED[p.label])
    fastpath.choose("resnet20", "cifar10", "cpu", 512, log=lambda s: None)
    monkeypatch.setattr(fastpath, "measure", lambda *a, **k: pytest.fail("measured twice"))
    assert fastpath.choose("resnet20", "cifar100", "cpu", 64, log=lambda s: None).label == "bf16+cl"
