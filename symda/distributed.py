"""Where a stage loop runs: in this process, or as a Ray Train worker group.

A stage loop is a function `loop(runtime, report)`. `Runtime` tells it where it runs (device, rank,
world size, precision, memory format); `run_stage` decides how, from the config's `scale` section:

- scale.num_workers == 0: a plain call in this process (the CPU default; what Ray Train's in-process
  mode would do, without its start-up, and the only form Ray allows inside a Tune trial);
- N > 0: inside a `TorchTrainer` worker group of N (one GPU each with NCCL when scale.use_gpu, gloo on
  CPU), whose checkpoints go through `ray.train.report`, so `scale.max_failures` restarts a crashed
  group from its last checkpoint.

Whatever runs the loop, the caller's `report` is called in the caller's process with rank 0's records:
reports travel from the controller back to the caller through a queue. So a Tune trial that runs a
stage on 8 GPUs still just gets report() calls, and `report` stays the loops' only tie to Ray.

Why the loops average gradients themselves (Runtime.average_gradients) instead of using DDP: the
adaptation step backpropagates up to three losses through the segmenter per step and freezes the
discriminators through requires_grad, and the translator's gradient penalty needs a double backward;
DDP's reducer supports neither without find_unused_parameters and no_sync contortions. One all-reduce
of one flat buffer per network per step is what DDP's buckets cost, minus the overlap with backward.

This module imports Ray only inside run_stage, so the library never needs Ray to load.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from symda.config import ConfigError, ScaleConfig

log = logging.getLogger(__name__)

Report = Callable[..., None]
"""report(record: symda.records.Record, checkpoint: Path | None = None)."""


def start_local_ray(**kwargs: Any) -> Any:
    """ray.init(**kwargs) for a cluster of this machine only (no address), every server of it bound
    to 127.0.0.1: the GCS, the raylet, the workers, the dashboard's agent, the runtime-env agent.

    Ray binds its servers to all interfaces unless the node's address is the loopback one, and turns
    every address given for a node (`_node_ip_address="127.0.0.1"` too) into the machine's network
    address, except where its cluster mode is off (what it does on macOS and Windows; Ray 2.60:
    ray_constants.ENABLE_RAY_CLUSTER, read per call by services.get_node_ip_address, and by the
    cluster's own processes from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when they start). Off, no other
    machine can join this cluster: a cluster of several machines is `ray start` and --address.
    """
    import ray
    import ray._private.ray_constants as ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # the cluster's processes read it at start
    ray_constants.ENABLE_RAY_CLUSTER = False  # this process imported ray before the variable was set
    return ray.init(**kwargs)


@dataclass(frozen=True)
class Runtime:
    """Where a loop runs. The default is a single CPU process in fp32."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    rank: int = 0
    world_size: int = 1
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    channels_last: bool = False
    compile: bool = False  # torch.compile the networks (nn.Module.compile: in place, state_dict keys kept)

    @property
    def is_main(self) -> bool:
        """Only the main rank writes files (checkpoints, samples, artifacts)."""
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast of the forward passes when precision == "bf16"; a no-op otherwise."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def module(self, model: nn.Module) -> nn.Module:
        """`model` moved to the device (channels-last when asked) and, with several ranks, made equal
        to rank 0's parameters and buffers."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compile:
            model.compile()
        if self.world_size > 1:
            import torch.distributed as dist

            for t in [*model.parameters(), *model.buffers()]:
                dist.broadcast(t.data, src=0)
        return model

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """An (N, C, H, W) batch on the device, channels-last when asked."""
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def to(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True)

    def average_gradients(self, *models: nn.Module) -> None:
        """Average the gradients of `models` over the ranks (one all-reduce of a flat buffer each)."""
        if self.world_size == 1:
            return
        import torch.distributed as dist

        for model in models:
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            if not grads:
                continue
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= self.world_size
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()


def local_runtime(scale: ScaleConfig) -> Runtime:
    """The runtime of a loop (or an inference pass) in this process: the GPU when asked for and present."""
    use_gpu = scale.use_gpu and torch.cuda.is_available()
    if scale.use_gpu and not use_gpu:
        log.warning("scale.use_gpu is set but this process sees no GPU: running on the CPU")
    return Runtime(
        device=torch.device("cuda" if use_gpu else "cpu"),
        precision=scale.precision,
        channels_last=scale.channels_last,
        compile=scale.compile,
    )


def check_resources(scale: ScaleConfig, available: dict[str, float], what: str = "this run") -> None:
    """Refuse, before anything starts, a worker group the cluster cannot place (instead of waiting forever).

    `available` is ray.cluster_resources() (or any {"CPU": n, "GPU": n} dict).
    """
    workers = max(scale.num_workers, 1)
    if scale.use_gpu:
        need = workers * scale.gpus_per_worker
        have = available.get("GPU", 0.0)
        if need > have:
            raise ConfigError(
                f"scale: {what} asks for {need:g} GPUs (scale.num_workers={scale.num_workers} x "
                f"scale.gpus_per_worker={scale.gpus_per_worker:g}) but the Ray cluster has {have:g}"
            )
    need_cpu = scale.num_workers * scale.cpus_per_worker
    if need_cpu > available.get("CPU", 0.0):
        raise ConfigError(
            f"scale: {what} asks for {need_cpu} CPUs (scale.num_workers={scale.num_workers} x "
            f"scale.cpus_per_worker={scale.cpus_per_worker}) but the Ray cluster has {available.get('CPU', 0):g}"
        )


def run_stage(
    loop: Callable[[Runtime, Report], Any],
    scale: ScaleConfig,
    work_dir: Path,
    report: Report,
    storage: Path,
) -> None:
    """Run `loop(runtime, report)` where `scale` says (see the module docstring).

    work_dir: the stage's output folder (an artifact being built); the loop resumes from what it finds
    there. storage: Ray Train's storage folder. The Train run is named after work_dir plus an id kept
    in work_dir, so a restarted build of the same artifact resumes its own Train run, while a rebuild
    after the artifact was deleted starts a fresh one (Train returns a finished run's old result).
    """
    work_dir = Path(work_dir)
    if scale.num_workers == 0:
        # In process, also under Ray: TorchTrainer(num_workers=0) would run the loop in this process
        # too, but inside a Tune trial Ray refuses ray.train calls from such a local-mode worker.
        loop(local_runtime(scale), report)
        return
    _run_in_trainer(loop, scale, work_dir, report, Path(storage))


def _train_run_name(work_dir: Path) -> str:
    id_file = work_dir / "ray_train_run"
    if not id_file.is_file():
        work_dir.mkdir(parents=True, exist_ok=True)
        id_file.write_text(f"{work_dir.name.strip('.')}-{uuid.uuid4().hex[:8]}")
    return id_file.read_text().strip()


def _scalars(record: Any) -> dict[str, Any]:
    """What Ray Train stores of a record: its scalar values (per-class ones stay in our own logs)."""
    return {k: v for k, v in dict(record).items() if isinstance(v, int | float | str | bool)}


def _run_in_trainer(
    loop: Callable[[Runtime, Report], Any], scale: ScaleConfig, work_dir: Path, report: Report, storage: Path
) -> None:
    import ray
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.queue import Queue

    if not ray.is_initialized():  # `symda run` with scale.num_workers > 0: a local cluster, or RAY_ADDRESS's
        os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "1")  # Train runs in the dashboard
        start_local_ray(include_dashboard=True, dashboard_host="127.0.0.1", logging_level="WARNING")
    check_resources(scale, ray.cluster_resources(), f"the stage in {work_dir}")
    queue = Queue(actor_options={"num_cpus": 0})
    use_gpu = scale.use_gpu
    threads = scale.cpus_per_worker

    def worker(_: dict) -> None:
        import shutil
        import tempfile

        import ray.train

        ctx = ray.train.get_context()
        rank, world = ctx.get_world_rank(), ctx.get_world_size()
        if scale.num_workers > 0:  # Ray sets OMP threads to the task's CPUs; torch's own pool too
            torch.set_num_threads(threads)
        device = ray.train.torch.get_device() if use_gpu else torch.device("cpu")
        restored = ray.train.get_checkpoint()
        if restored is not None and rank == 0:
            # A restarted group on another node: bring the last checkpoint Ray saw into the work dir.
            with restored.as_directory() as d:
                for f in Path(d).iterdir():
                    if not (work_dir / f.name).exists():
                        shutil.copy2(f, work_dir / f.name)

        def worker_report(record: Any, checkpoint: Path | None = None) -> None:
            if rank == 0:
                queue.put((record, str(checkpoint) if checkpoint else None))
            if checkpoint is None:
                ray.train.report(_scalars(record))
                return
            with tempfile.TemporaryDirectory() as tmp:
                os.link(checkpoint, Path(tmp) / Path(checkpoint).name)
                ray.train.report(_scalars(record), checkpoint=ray.train.Checkpoint.from_directory(tmp))

        loop(Runtime(device, rank, world, scale.precision, scale.channels_last, scale.compile), worker_report)

    resources = {"CPU": scale.cpus_per_worker, **({"GPU": scale.gpus_per_worker} if use_gpu else {})}
    trainer = TorchTrainer(
        worker,
        scaling_config=ray.train.ScalingConfig(
            num_workers=scale.num_workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=ray.train.RunConfig(
            name=_train_run_name(work_dir),
            storage_path=str(storage.resolve()),
            failure_config=ray.train.FailureConfig(max_failures=scale.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
        ),
    )
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as err:  # re-raised in the caller's thread below
            outcome["error"] = err

    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    for record, checkpoint in _drain(queue, thread):
        report(record, checkpoint=Path(checkpoint) if checkpoint else None)
    queue.shutdown()
    if "error" in outcome:
        raise _unwrap_train_error(outcome["error"])


def _drain(queue: Any, thread: threading.Thread) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Items of the queue until the thread has ended and the queue is empty."""
    from ray.util.queue import Empty

    while True:
        try:
            yield queue.get(timeout=0.2)
        except Empty:
            if not thread.is_alive():
                while not queue.empty():
                    yield queue.get_nowait()
                return


def _unwrap_train_error(err: BaseException) -> BaseException:
    """Ray Train wraps a worker's exception (TrainingFailedError); surface the worker's own error
    (e.g. FloatingPointError for a NaN loss) so callers and Tune record what really happened."""
    for attr in ("worker_failures", "_worker_failures"):
        failures = getattr(err, attr, None)
        if isinstance(failures, dict) and failures:
            inner = next(iter(failures.values()))
            if isinstance(inner, BaseException):
                return inner
    cause = err.__cause__
    return cause if isinstance(cause, Exception) and not isinstance(cause, KeyboardInterrupt) else err


# ------------------------------------------------------------------------ a stage beside this process


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to `n` inside the block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask where the OS tells, else os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class BackgroundCall:
    """`fn(*args, report=...)` in a child process (spawned), `threads` torch threads there, while this
    process goes on; the child's reports are handed to `report` here as they come (a thread drains
    them), so its loss lines, logs and TensorBoard curves look as if it ran here.

    Why a process: two CPU stages side by side on one thread each get more done than one after the
    other on two threads each (a conv step on small images does not scale to a second core: on this
    machine's 2 cores the adaptation steps of F_T and F_S take about 1.3x as long on one thread as on
    two). `result()` waits for the child and returns what fn returned (picklable), or raises
    BackgroundError with the child's traceback.
    """

    def __init__(self, fn: Callable[..., Any], args: tuple, report: Report, threads: int, name: str) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # fork after torch started threads is unsafe
        self.name, self._report = name, report
        self._queue = ctx.Queue()
        level = logging.getLogger("symda").getEffectiveLevel()
        # Not a daemon: a daemonic process may not start children (the stage's DataLoader workers with
        # data.num_workers > 0); the caller joins it (result) or ends it (stop) on every path.
        self._process = ctx.Process(target=_background_main, args=(fn, args, threads, level, self._queue),
                                    name=name)  # fmt: skip
        self._outcome: tuple | None = None
        self._done = threading.Event()
        self._process.start()
        self._drainer = threading.Thread(target=self._drain, name=f"{name}-reports", daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        while True:
            try:
                message = self._queue.get(timeout=1.0)
            except Exception:  # queue.Empty: is the child still there?
                if not self._process.is_alive() and self._queue.empty():
                    self._outcome = self._outcome or (
                        "error",
                        f"exited with code {self._process.exitcode}",
                        "",
                    )
                    break
                continue
            if message[0] == "report":
                try:
                    self._report(message[1])
                except Exception as err:  # a failing report must not hang the child's result
                    log.warning("%s: report failed: %s", self.name, err)
                continue
            self._outcome = message
            break
        self._done.set()

    def result(self) -> Any:
        """Wait for the child; its fn's return value, or BackgroundError."""
        self._done.wait()
        self._process.join()
        kind, *rest = self._outcome
        if kind == "done":
            return rest[0]
        message, trace = rest
        raise BackgroundError(f"{self.name} (in its own process) failed: {message}\n{trace}".rstrip())

    def stop(self) -> None:
        """End the child now (this process failed: its partner's build stops too and resumes later)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=30)


class BackgroundError(RuntimeError):
    """A BackgroundCall's function raised (or its process died); the message holds its traceback."""


def _background_main(fn: Callable[..., Any], args: tuple, threads: int, log_level: int, queue) -> None:
    import traceback

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("symda").setLevel(log_level)  # the parent's: its "building ..." lines show here too
    torch.set_num_threads(threads)

    def report(record: Any, checkpoint: Path | None = None) -> None:
        queue.put(("report", record))  # records are frozen dataclasses of plain values: they pickle

    try:
        queue.put(("done", fn(*args, report=report)))
    except BaseException as err:
        queue.put(("error", f"{type(err).__name__}: {err}", traceback.format_exc()))
