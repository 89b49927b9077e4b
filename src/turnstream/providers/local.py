"""The embedded local model: Qwen2.5-Coder (1.5B / 0.5B, Q4_K_M) run in-process by xllamacpp.

xllamacpp runs llama.cpp's own server code inside this process (chat template,
streaming, prompt cache, grammars). Its `handle_chat_completions` blocks, so each
response runs in a worker thread that hands chunks to the event loop through an
`asyncio.Queue`; the chunk callback returns True once the consumer has gone away,
which makes llama.cpp cancel the task.

Each model serves `slots` conversations at once (llama.cpp's parallel slots, each
with `ctx_size` tokens of context, decoded together in one batch). A request that
finds every slot busy waits in a FIFO gate here, not inside llama.cpp, so the
provider knows it is waiting: it yields a `QueuedDelta` (the server shows the
response `queued`) and a `StartedDelta` once a slot frees. The gate's slot is given
back by the worker thread when llama.cpp returns, so no more than `slots` requests
ever reach it.

Cancelling reaches llama.cpp only through the chunk callback, and during prompt
evaluation no token arrives to call it. Requests therefore ask for llama.cpp's
prompt-progress chunks (`return_progress`), one per evaluated batch of `batch_size`
tokens: the callback sees each and can cancel between batches. `batch_size` bounds
how long a cancel waits (see `bench/local_model.py --serving` for figures).

Models load in the background (`start()`; `ready()` waits): the GGUF is assembled from
its pinned chunk packages on first use (`_local_model`), loaded, and warmed up with the
system prompt so the first real turn only evaluates the conversation. While a model
loads, `stream()` waits up to `load_wait` seconds and then raises a 503
`ProviderError` with `retry_after`; `loading` and `load_progress` let a server answer
early instead. Requests and replies are translated by `_local_chat` (see there for the
tool-calling strategy and why).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import importlib.util
import logging
import os
import secrets
import tempfile
import threading
import time
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from turnstream.engine.deltas import (
    Delta,
    FinishDelta,
    OutputTextDelta,
    QueuedDelta,
    StartedDelta,
)
from turnstream.providers._call_grammar import (
    call_grammar,
    chat_chunk,
    completion_body,
    text_body,
)
from turnstream.providers._call_review import Correction, other_day_tools, unrelated
from turnstream.providers._local_chat import (
    CONFIRM_GRAMMAR,
    FOLLOW_UP_PROSE,
    TOPIC_PROSE,
    ChatPlan,
    ChunkTranslator,
    ToolStrategy,
    answer_body,
    bare_body,
    build_chat_request,
    confirm_body,
    failure_note,
    result_note,
    retry_body,
    system_prompt,
)
from turnstream.providers._local_model import (
    MODEL_SPECS,
    LocalModelError,
    ModelSize,
    default_cache_dir,
    ensure_model,
    locate_parts,
)
from turnstream.providers._text_calls import ParsedCall
from turnstream.providers.base import (
    GenerationRequest,
    ModelLoadState,
    Provider,
    ProviderError,
)

__all__ = [
    "DEFAULT_MODELS",
    "ChatEngine",
    "LocalProvider",
    "default_threads",
    "local_model_available",
    "xllamacpp_engine_factory",
]

logger = logging.getLogger(__name__)

DEFAULT_MODELS: Mapping[str, ModelSize] = {"local": "1.5b", "local-small": "0.5b"}
DEFAULT_SLOTS = 2
"""Conversations one model generates for at the same time."""
DEFAULT_BATCH_SIZE = 16
"""Prompt tokens llama.cpp evaluates between two chances to cancel (`n_batch`).

A cancel waits for the batch under way. Side by side on a loaded 2-core machine
(`bench/results/local_serving_cancel_s20.json`, cancels at random moments): 16 tokens
freed the slot 0.45 s after a cancel (median; at most 0.77), 32 tokens 1.12 s (at most
3.8), for 8 % less prompt speed (18.9 against 20.5 tok/s). 8 tokens cost a third of
the prompt speed in a measurement by hand (16.7 against 25.3 tok/s for 32)."""
_RETRY_AFTER_SECONDS = 5.0


class ChatEngine(Protocol):
    """What the provider needs from xllamacpp's `Server` (a seam for tests)."""

    def handle_chat_completions(
        self, prompt: dict[str, Any], callback: Callable[[dict[str, Any]], bool] | None = None
    ) -> Any:
        """Run one chat completion; stream chunks into `callback` (True cancels)."""
        ...

    def handle_completions(
        self, prompt: dict[str, Any], callback: Callable[[dict[str, Any]], bool] | None = None
    ) -> Any:
        """Run one completion of a raw prompt; stream chunks into `callback`."""
        ...


EngineFactory = Callable[[Path], ChatEngine]

MAX_DEFAULT_THREADS = 8
"""More threads than this rarely speed up a small model; llama.cpp's own advice is
the physical cores, which on many machines are half the logical ones."""


def default_threads() -> int:
    """Threads for the embedded model when none are set: the CPUs this process may
    use, at most `MAX_DEFAULT_THREADS`."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, MAX_DEFAULT_THREADS))


def local_model_available(size: ModelSize = "1.5b", cache_dir: Path | None = None) -> bool:
    """Whether xllamacpp and the model (cached, or its chunk packages) are installed.

    Cheap: imports nothing and reads no model bytes.
    """
    if importlib.util.find_spec("xllamacpp") is None:
        return False
    spec = MODEL_SPECS[size]
    cached = (cache_dir or default_cache_dir()) / spec.filename
    if cached.is_file() and cached.stat().st_size == spec.size:
        return True
    try:
        locate_parts(spec)
    except LocalModelError:
        return False
    return True


def xllamacpp_engine_factory(
    *,
    threads: int | None = None,
    ctx_size: int = 8192,
    slots: int = DEFAULT_SLOTS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    prompt_cache_mib: int = 512,
    port: int | None = None,
) -> EngineFactory:
    """Build llama.cpp servers for a GGUF path with turnstream's settings.

    `ctx_size` is the context of one slot: llama.cpp splits its context evenly
    between the `slots`, so it gets `ctx_size * slots` in all.
    With `port`, the server also listens on 127.0.0.1 with llama.cpp's own HTTP API
    (`/v1/chat/completions`), which lets tests drive a real upstream nobody here wrote.
    """
    if slots < 1:
        raise ValueError("slots must be at least 1")
    if threads is not None and threads < 1:
        raise ValueError("threads must be at least 1")
    n_threads = threads or default_threads()

    def create(model_path: Path) -> ChatEngine:
        try:
            xllamacpp: Any = importlib.import_module("xllamacpp")
        except ImportError as exc:
            raise LocalModelError(
                "the local model needs xllamacpp; run: pip install 'turnstream[local]'"
            ) from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(model_path)
        params.n_ctx = ctx_size * slots
        params.n_parallel = slots
        params.n_batch = batch_size
        params.n_ubatch = batch_size
        params.cpuparams.n_threads = n_threads
        params.cpuparams_batch.n_threads = n_threads
        # llama.cpp keeps old prompts in RAM for reuse; its 8 GiB default would dwarf
        # the model on a small machine.
        params.cache_ram_mib = prompt_cache_mib
        params.verbosity = -1
        if port is not None:
            params.port = port
            engine: ChatEngine = xllamacpp.Server(params)
            return engine
        return _server_without_network(xllamacpp, params)

    return create


def _server_without_network(xllamacpp: Any, params: Any) -> ChatEngine:
    """A llama.cpp server that nobody else can reach.

    xllamacpp always starts llama.cpp's HTTP server beside the in-process calls we
    use, by default on a random loopback TCP port that any local user could drive
    (`/v1/chat/completions`, `/props`, `/slots`) with no key. Given a `.sock` path
    as its host it listens on a Unix socket instead: we put that in a private
    (0700) directory, demand a random key on it, and remove the path as soon as
    the server is up, so no process can connect to it at all. No TCP port is opened.
    """
    private = Path(tempfile.mkdtemp(prefix="turnstream-llama-"))
    private.chmod(0o700)
    socket_path = private / "llama.sock"
    params.hostnames = [str(socket_path)]
    params.api_keys = [secrets.token_urlsafe(32)]
    try:
        engine: ChatEngine = xllamacpp.Server(params)
    finally:
        # once unlinked, a Unix socket cannot be connected to by path
        with contextlib.suppress(OSError):
            socket_path.unlink()
        with contextlib.suppress(OSError):
            private.rmdir()
    return engine


@dataclass(slots=True)
class _ModelSlot:
    size: ModelSize
    lock: threading.Lock = field(default_factory=threading.Lock)
    engine: ChatEngine | None = None
    task: asyncio.Future[ChatEngine] | None = None
    progress: float = 0.0
    load_seconds: float | None = None
    gate: _SlotGate = field(default_factory=lambda: _SlotGate(DEFAULT_SLOTS))


class _SlotGate:
    """The free generation slots of one model, handed out in arrival order.

    Released by the worker thread when llama.cpp returns, which may be after the
    event loop that asked for the slot has gone (a test's loop, a server shutting
    down): so it is thread-safe and needs no loop to give a slot back, and a waiter
    whose loop has closed is passed over.
    """

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    def busy(self) -> bool:
        """Whether a request arriving now would have to wait."""
        with self._lock:
            return self._free == 0 or bool(self._waiters)

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            with self._lock:
                queued = (loop, waiter) in self._waiters
                if queued:
                    self._waiters.remove((loop, waiter))
            if not queued and waiter.done() and not waiter.cancelled():
                self.release()  # the slot came just as the waiter left: pass it on
            raise

    def release(self) -> None:
        """Give a slot back (from any thread): to the longest waiter, else to the pool."""
        with self._lock:
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(self._grant, waiter)
                except RuntimeError:  # that waiter's loop has closed
                    continue
                return
            self._free += 1

    def _grant(self, waiter: asyncio.Future[None]) -> None:
        if waiter.cancelled():
            self.release()  # it left after it was chosen: the next one gets the slot
        else:
            waiter.set_result(None)


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


class LocalProvider(Provider):
    """Serves the embedded models under public names (`local`, `local-small`).

    Args:
        models: public model name -> model size.
        threads: CPU threads for generation and prompt evaluation (default:
            `default_threads()`). On a machine busy with other work, fewer threads
            than cores run faster: llama.cpp's threads wait for each other at every
            step, and one that is descheduled stalls them all.
        ctx_size: context window in tokens (per conversation slot).
        slots: conversations each model generates for at once; more wait, `queued`.
        batch_size: prompt tokens evaluated between two chances to cancel.
        preload: which models `start()` loads: every one (`True`), none (`False`), or
            these public names (names this provider does not serve are ignored). The
            others load on first use, so that a chat with one model does not have
            another load beside its first turns.
        cache_dir: where assembled GGUF files live (see `_local_model.default_cache_dir`).
        strategy: how tools are offered to the model (`"prompted"` or `"native"`).
        load_wait: how long a request waits for a loading model before a 503.
        warmup_tools: tools to warm the prompt cache with (those the server expects).
        warmup_instructions: instructions to warm the prompt cache with.
        call_grammar: decode a call the model starts writing as text under a grammar
            built from the tools' schemas (`_call_grammar`; prompted strategy only).
        call_grounding: also reject (and re-sample) a call whose string values
            nobody said, to a tool the user did not ask for (`_call_review`).
        call_check: with `call_grounding`, ask the model about a first call to a tool
            the user's message does not name before it runs (`confirm_body`). Off by
            default: on the 87 tuning cases of `bench/decisions.py`, end to end, it
            turned no wrong decision right and two right ones wrong (it said "no" to
            a unit conversion and a percentage), for a second prompt on such calls.
        engine_factory: builds an engine for a GGUF path (tests inject a fake).
        model_path: where to find a size's GGUF instead of assembling it.
    """

    def __init__(
        self,
        models: Mapping[str, ModelSize] = DEFAULT_MODELS,
        *,
        threads: int | None = None,
        ctx_size: int = 8192,
        slots: int = DEFAULT_SLOTS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        preload: bool | Collection[str] = True,
        cache_dir: Path | None = None,
        strategy: ToolStrategy = "prompted",
        load_wait: float = 30.0,
        warmup_tools: Sequence[Mapping[str, Any]] = (),
        warmup_instructions: str | None = None,
        call_grammar: bool = True,
        call_grounding: bool = True,
        call_check: bool = False,
        engine_factory: EngineFactory | None = None,
        model_path: Callable[[ModelSize], Path] | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self._models = dict(models)
        self._slots = {
            size: _ModelSlot(size, gate=_SlotGate(slots))
            for size in dict.fromkeys(self._models.values())
        }
        self.slots = slots
        self._preload: set[ModelSize] = (
            set(self._slots)
            if preload is True
            else set()
            if preload is False
            else {self._models[name] for name in preload if name in self._models}
        )
        self._cache_dir = cache_dir
        self._strategy: ToolStrategy = strategy
        self._load_wait = load_wait
        self._warmup_tools = list(warmup_tools)
        self._warmup_instructions = warmup_instructions
        self._call_grammar = call_grammar
        self._grounding = call_grounding
        self._check = call_grounding and call_check
        self._engine_factory = engine_factory or xllamacpp_engine_factory(
            threads=threads, ctx_size=ctx_size, slots=slots, batch_size=batch_size
        )
        self._model_path = model_path
        self._active: set[threading.Thread] = set()
        self._stops: set[threading.Event] = set()
        self._closed = False
        # set by aclose(): a load in progress stops at its next step instead of
        # holding the server's shutdown for the whole load (a minute on a busy machine)
        self._closing = threading.Event()
        self._load_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------

    def models(self) -> Sequence[str]:
        """The public model names this provider answers for."""
        return list(self._models)

    def start(self, model: str | None = None) -> None:
        """Begin loading in the background: the `preload` models, or `model`. Idempotent."""
        if model is not None:
            self._ensure_loading(self._slot_for(model))
            return
        for size, slot in self._slots.items():
            if size in self._preload:
                self._ensure_loading(slot)

    async def ready(self, model: str | None = None) -> None:
        """Wait until `model` (default: every model) is loaded; re-raise a load failure."""
        names = [model] if model is not None else list(self._models)
        for name in names:
            await self._ensure_loading(self._slot_for(name))

    @property
    def loading(self) -> bool:
        """True while any model is being assembled or loaded."""
        return any(s.task is not None and not s.task.done() for s in self._slots.values())

    @property
    def load_progress(self) -> float:
        """Progress of the models being loaded, 0.0 to 1.0 (1.0 when idle)."""
        busy = [s.progress for s in self._slots.values() if s.task and not s.task.done()]
        return min(busy) if busy else 1.0

    def is_ready(self, model: str) -> bool:
        """Whether `model` can answer without waiting for a load."""
        return self._slot_for(model).engine is not None

    def load_state(self, model: str) -> ModelLoadState:
        """`ready`, `loading`, `on_first_use` or `failed` (see `Provider.load_state`).
        Safe to read from another thread (the terminal chat's)."""
        slot = self._slot_for(model)
        task = slot.task
        if slot.engine is not None:
            return "ready"
        if task is None:
            return "on_first_use"
        return "failed" if task.done() else "loading"

    def model_load_progress(self, model: str) -> float:
        """This model's progress: models load one after another, and one still waiting
        for its turn is at 0.0 (so `load_progress`, the least of them, says little)."""
        slot = self._slot_for(model)
        return 1.0 if slot.engine is not None else slot.progress

    def may_queue(self, model: str) -> bool:
        """Always: a request waits while every slot of its model is busy."""
        return True

    async def aclose(self) -> None:
        """Stop every generation, wait for the worker threads, and unload the models."""
        self._closed = True
        self._closing.set()
        for stop in list(self._stops):
            stop.set()
        threads = list(self._active)
        if threads:
            await asyncio.to_thread(_join_all, threads, 30.0)
        for slot in self._slots.values():
            if slot.task is not None and not slot.task.done():
                with contextlib.suppress(BaseException):
                    await slot.task
            slot.engine = None

    def _slot_for(self, model: str) -> _ModelSlot:
        try:
            return self._slots[self._models[model]]
        except KeyError:
            raise ProviderError(
                f"the local provider does not serve the model {model!r}",
                code="model_not_found",
                status=400,
            ) from None

    def _ensure_loading(self, slot: _ModelSlot) -> asyncio.Future[ChatEngine]:
        if slot.task is None or (slot.task.done() and slot.engine is None):
            slot.task = asyncio.ensure_future(asyncio.to_thread(self._load, slot))
            # A failed preload is reported to requests, not as an unretrieved exception.
            slot.task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return slot.task

    def _load(self, slot: _ModelSlot) -> ChatEngine:
        # Loads never overlap: two would only compete for the same cores and memory.
        with self._load_lock, slot.lock:
            if slot.engine is not None:
                return slot.engine
            started = time.perf_counter()
            slot.progress = 0.0
            # Closing stops a load between its steps: assembling the GGUF (at its
            # next piece), building llama.cpp's server and the warm-up (neither can
            # be interrupted: xllamacpp holds the GIL while it maps the weights). A
            # model that was still waiting its turn never starts.
            self._raise_if_closing()
            path = self._resolve_path(slot)
            self._raise_if_closing()
            slot.progress = 0.8
            engine = self._engine_factory(path)
            self._raise_if_closing()
            slot.progress = 0.9
            self._warm_up(engine)
            self._raise_if_closing()
            slot.engine = engine
            slot.progress = 1.0
            slot.load_seconds = time.perf_counter() - started
            logger.info("local model %s ready in %.1f s", slot.size, slot.load_seconds)
            return engine

    def _resolve_path(self, slot: _ModelSlot) -> Path:
        if self._model_path is not None:
            return self._model_path(slot.size)

        def progress(done: int, total: int) -> None:
            self._raise_if_closing()  # the partial file is removed on the way out
            slot.progress = 0.8 * done / total if total else 0.0

        return ensure_model(slot.size, self._cache_dir, progress=progress)

    def _warm_up(self, engine: ChatEngine) -> None:
        """Evaluate the system prompt once so that llama.cpp's prefix cache holds it."""
        prompt = system_prompt(self._warmup_instructions, self._warmup_tools)
        body = {
            "messages": [{"role": "system", "content": prompt}, {"role": "user", "content": "Hi"}],
            "max_tokens": 1,
        }
        # Not streamed, so closing cannot cut it short: a streamed warm-up (cancelled
        # between prompt batches) measured a slower first turn after it (5.2-5.7 s
        # against 4.5 s, two rounds each on a busy machine), and that turn matters more
        engine.handle_chat_completions(body)

    def _raise_if_closing(self) -> None:
        if self._closing.is_set():
            raise LocalModelError("the local provider was closed while the model loaded")

    async def _engine_for(self, model: str) -> ChatEngine:
        slot = self._slot_for(model)
        if slot.engine is not None:
            return slot.engine
        task = self._ensure_loading(slot)
        try:
            async with asyncio.timeout(self._load_wait):
                return await asyncio.shield(task)
        except TimeoutError:
            raise ProviderError(
                f"the local model {model!r} is still loading; retry shortly",
                code="model_loading",
                status=503,
                retry_after=_RETRY_AFTER_SECONDS,
            ) from None
        except LocalModelError as exc:
            raise ProviderError(str(exc), code="model_unavailable", status=503) from exc
        except Exception as exc:  # llama.cpp refusing the file, out of memory, ...
            raise ProviderError(
                f"the local model {model!r} failed to load: {exc}",
                code="model_unavailable",
                status=503,
            ) from exc

    # -- generation ------------------------------------------------------------------

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """Generate one response as deltas; closing the iterator stops generation.

        When every slot of the model is busy it first yields `QueuedDelta`, then
        `StartedDelta` once it has a slot.
        """
        if self._closed:
            raise ProviderError("the local provider is closed", code="server_error", status=503)
        engine = await self._engine_for(request.model)
        plan = build_chat_request(request, strategy=self._strategy)
        gate = self._slot_for(request.model).gate
        if gate.busy():
            yield QueuedDelta()
            await gate.acquire()
            try:
                yield StartedDelta()
            except BaseException:
                gate.release()  # the consumer left before the slot was handed on
                raise
        else:
            await gate.acquire()
        # A call the review rejects (`_call_review`: a copied example, an answered
        # call repeated, a name no tool has, an ungrounded call) is held back and the
        # model re-samples once with the reason. The re-sample is reviewed too, and
        # one rejected again (unless for a mistake it can mend, a `Correction`, which
        # gets up to two more tries: `_re_sample`) ends the turn in plain text: a pass
        # on the first prompt (cached), under a grammar that admits no call. Not on
        # the re-sample's prompt: there the last word is a reason about functions, and
        # the model's prose answered that ("I don't have a function named write_long_story")
        # instead of the user's request (the story). A call rejected only because
        # nobody asked for it (`ChunkTranslator.unasked`) goes to that text pass at
        # once: the reason would ask for plain text, and the text pass's prompt is
        # in llama.cpp's cache where the re-sample's would have to be evaluated (and
        # for a call made for a message that asks for no tool, the first prompt alone
        # is tried before it: `_second_pass`).
        # A first reply that opens by talking about calling a function (`TalkGuard`)
        # is treated the same way: re-sampled for the call if the message asks for a
        # tool, else answered by the text pass at once.
        body = self._body(plan, plan.body)
        translator = self._translator(plan, body, confirm=self._check)
        async for delta in self._pass(engine, body, gate, translator, acquire=False):
            yield delta
        async for delta in self._recover(engine, plan, gate, translator):
            yield delta

    async def _recover(
        self, engine: ChatEngine, plan: ChatPlan, gate: _SlotGate, translator: ChunkTranslator
    ) -> AsyncGenerator[Delta, None]:
        """After the first pass: check a held call, re-sample a rejected one, or answer
        in the text pass (nothing, if the first pass's reply went out)."""
        prose_plan = dataclasses.replace(plan, sniff_calls=False, grammar=None)
        if translator.doubtful is not None:
            # a first call to a tool the message does not name: asked about first
            call = translator.doubtful
            if await self._confirm(engine, plan, call, gate):
                for delta in translator.confirmed():
                    yield delta
                return
            logger.info("local model call to %s not confirmed, answering in text", call.name)
        elif translator.rejected is None:
            return
        else:
            reason = translator.rejected[1]
            second = self._second_pass(plan, prose_plan, translator)
            if second is not None:
                body, translator = second
                outcome: list[str | None] = []
                async for delta in self._re_sample(engine, plan, gate, body, translator, outcome):
                    yield delta
                if outcome[0] is None:
                    return
                if translator.refused:
                    # the first prompt alone gave a stock refusal to a message its
                    # call was not asked for: not the text pass, whose prompt still
                    # describes the tools, but none
                    logger.info(
                        "local model refused with no call made, answering without the tools"
                    )
                    async for delta in self._answer_bare(engine, plan, prose_plan, gate):
                        yield delta
                    return
                reason = outcome[0]
            logger.info("local model call rejected, answering in text: %s", reason)
        async for delta in self._answer_in_text(engine, plan, prose_plan, gate):
            yield delta

    async def _re_sample(
        self,
        engine: ChatEngine,
        plan: ChatPlan,
        gate: _SlotGate,
        body: _Body,
        translator: ChunkTranslator,
        outcome: list[str | None],
    ) -> AsyncGenerator[Delta, None]:
        """The re-sample after a rejection, and, while its call is rejected with a
        `Correction` (a mistake the model can mend: a number paired with the wrong
        currency, a step bound to one number), up to `_CORRECTIONS` more, each shown
        that call and the reason and held to a call, while each mistake is a new one.
        `outcome` gets the last rejection's reason, or None once a reply went out."""
        given: set[str] = set()
        for tries in range(_CORRECTIONS + 1):
            # the pass before gave its slot back when llama.cpp returned: wait for one
            # again (behind whoever queued meanwhile), without a second queued signal
            async for delta in self._pass(engine, body, gate, translator):
                yield delta
            if translator.rejected is None:
                outcome.append(None)
                return
            calls, reason = translator.rejected
            mendable = calls and isinstance(reason, Correction) and reason not in given
            if tries == _CORRECTIONS or not mendable:
                outcome.append(reason)
                return
            given.add(reason)
            logger.info("local model call rejected again, re-sampling: %s", reason)
            body = self._body(plan, retry_body(plan, calls, reason), forced=True)
            translator = self._translator(plan, body, calls_only=True)

    async def _answer_in_text(
        self, engine: ChatEngine, plan: ChatPlan, prose_plan: ChatPlan, gate: _SlotGate
    ) -> AsyncGenerator[Delta, None]:
        """The text pass (`answer_body`), and what follows if it is rejected too.

        With no call made, the text pass is guarded against talk about functions as
        the first pass is: told "can you put my phone on silent till 3pm", the 1.5B
        talked of a "set_alarm" function in the first pass and, word for word, in the
        text pass, which went out."""
        prose = ChunkTranslator(prose_plan, text_pass=True, talk=True)
        async for delta in self._pass(engine, _prose(answer_body(plan)), gate, prose):
            yield delta
        if prose.rejected is None:
            return
        if prose.unsourced_figure:
            # no function gave the figure (every call failed, or none gives it), and
            # both passes made it up: say so instead
            logger.info("local model stated a figure no function gave, twice")
            yield OutputTextDelta(failure_note(plan.items, due=prose.unlooked))
            yield FinishDelta("stop")
            return
        if prose.refused:
            logger.info("local model refused in the text pass, answering without the tools")
            async for delta in self._answer_bare(engine, plan, prose_plan, gate):
                yield delta
            return
        # it wrote out its own instruction, the request or a result message: a last
        # pass on the first prompt alone, still under the grammar that admits no call
        logger.info(
            "local model text pass rejected (its prompt, a made-up time or talk), answering on the first prompt alone"
        )
        # (and it must not talk about a function either: with no call made, a pass
        # that only talked about `create_reminder` would end the turn as that talk)
        last = ChunkTranslator(prose_plan, last_pass=True, talk=True)
        async for delta in self._pass(engine, _prose(plan.body), gate, last):
            yield delta
        if last.talked and not plan.answer_turn:
            # every pass talked about a function, with no call made
            logger.info("local model talked about functions in every pass, answering without them")
            async for delta in self._answer_bare(engine, plan, prose_plan, gate):
                yield delta
            return
        if last.rejected is not None:
            # every pass wrote out the result message (or made a time up): the results
            # are the answer
            logger.info("local model answered with no pass clean, answering with the results")
            yield OutputTextDelta(result_note(plan.items))
            yield FinishDelta("stop")

    async def _answer_bare(
        self, engine: ChatEngine, plan: ChatPlan, prose_plan: ChatPlan, gate: _SlotGate
    ) -> AsyncGenerator[Delta, None]:
        """The conversation once more with no tool described (`bare_body`), for a turn
        with no call made whose passes talked about functions, or gave a stock refusal
        to a message that asks for nothing (`tells_only`: "I'm sorry, but I can't
        assist with that." to "Three hours to kill before boarding.", after a clock
        call of its own was rejected). Not for a refusal of a request: tried for those
        too, the tool-less pass answered "Book me a flight to Rome for next Friday."
        with "Sure, I can help you book a flight to Rome ...". Its prompt is new to
        the cache: it costs the conversation's evaluation, the tools' descriptions
        left out. Rejected too (talk), the turn ends in `result_note`."""
        bare = ChunkTranslator(prose_plan, last_pass=True, talk=True)
        async for delta in self._pass(engine, _prose(bare_body(plan)), gate, bare):
            yield delta
        if bare.rejected is not None:
            logger.info("local model answered with no pass clean, answering with the results")
            yield OutputTextDelta(result_note(plan.items))
            yield FinishDelta("stop")

    def _second_pass(
        self, plan: ChatPlan, prose_plan: ChatPlan, first: ChunkTranslator
    ) -> tuple[_Body, ChunkTranslator] | None:
        """After a rejected first pass: what to send next and how to read it, or None
        for the text pass at once."""
        assert first.rejected is not None
        calls, reason = first.rejected
        if not first.unasked:
            logger.info("local model call rejected, re-sampling: %s", reason)
            # after a rejected call, the re-sample may only call again: its prose would
            # answer the reason (about functions), so it is decoded under the call
            # grammar from its first token (and, where that cannot be sent, its prose
            # is rejected and the text pass answers instead)
            calls_only = first.calls_only_next
            # prose for a follow-up naming new values, or for a lookup a tool gives:
            # the same (cached) prompt, held to a call
            same = reason in (FOLLOW_UP_PROSE, TOPIC_PROSE)
            chat_body = plan.body if same else retry_body(plan, calls, reason)
            body = self._body(_held_to(plan, first.held_to), chat_body, forced=calls_only)
            return body, self._translator(plan, body, calls_only=calls_only)
        if _for_no_tool(plan, calls):
            # A call for a message that asks for none of the tools: a function no tool
            # has ("Hi!" -> `greeting`), or a real tool with values the user said
            # ("Say hello in French." -> `define_word`). First the first prompt alone,
            # under the grammar that admits no call. llama.cpp holds that prompt, so
            # the answer's first token comes at once, where the text pass's line costs
            # its evaluation, about 1.5 s on these machines; and for small talk its
            # answers were the better ones on the tune split ("Hello in French is
            # "Bonjour"." against "Hello!"; "I'm sorry to hear that you're feeling
            # tired." against a refusal). A reply that opens by talking about the
            # function (`TalkGuard`: "To translate ..., I'll use the `translate`
            # function.", as it did for 3 of 6 such requests on the tune split) goes to
            # the text pass after all. Not for values nobody said, to a tool the
            # message does not ask for: there the first prompt alone talked about the
            # tool for 3 of 5 requests and offered to order a pizza for a fourth. Not
            # in an answer turn either: there the 1.5B went on with the end of the
            # result message ("do not work it out yourself. ...").
            logger.info("local model call rejected, answering on the first prompt: %s", reason)
            return _prose(plan.body), ChunkTranslator(prose_plan, text_pass=True, talk=True)
        return None

    async def _confirm(
        self, engine: ChatEngine, plan: ChatPlan, call: ParsedCall, gate: _SlotGate
    ) -> bool:
        """Whether the model, asked (`confirm_body`), says `call` gives what the user
        asked for."""
        check = text_body(confirm_body(plan, call), grammar=CONFIRM_GRAMMAR)
        reader = ChunkTranslator(dataclasses.replace(plan, sniff_calls=False, grammar=None))
        body = _Body(check, completion="prompt" in check)
        answer = [
            delta.text
            async for delta in self._pass(engine, body, gate, reader)
            if isinstance(delta, OutputTextDelta)
        ]
        logger.info("local model asked about its call to %s: %r", call.name, "".join(answer))
        return "".join(answer).strip().lower().startswith("yes")

    async def _pass(
        self,
        engine: ChatEngine,
        body: _Body,
        gate: _SlotGate,
        translator: ChunkTranslator,
        *,
        acquire: bool = True,
    ) -> AsyncGenerator[Delta, None]:
        """One generation's deltas; with `acquire`, first wait for a slot of `gate`."""
        if acquire:
            await gate.acquire()
        # aclosing: a consumer that stops early stops the generation at once
        async with contextlib.aclosing(self._generate(engine, body, gate, translator)) as deltas:
            async for delta in deltas:
                yield delta

    def _translator(
        self, plan: ChatPlan, body: _Body, *, calls_only: bool = False, confirm: bool = False
    ) -> ChunkTranslator:
        return ChunkTranslator(
            plan,
            review=True,
            grounding=self._grounding,
            stream_arguments=body.completion,
            calls_only=calls_only,
            confirm=confirm,
        )

    def _body(self, plan: ChatPlan, chat_body: dict[str, Any], *, forced: bool = False) -> _Body:
        """What to send: the chat request, or its completion twin under the call grammar
        (`forced`: from the first token, so the reply is a call), or under the grammar
        that admits no call when the request withholds its tools (`prose_only`)."""
        if plan.prose_only:
            # at its turn limit, with the tools withheld, the 1.5B wrote the next call
            # as text, which reached the user as the answer
            return _prose(chat_body)
        if self._call_grammar and plan.grammar is not None:
            completion = completion_body(chat_body, plan.grammar, lazy=not forced)
            if completion is not None:
                return _Body(completion, completion=True)
        return _Body(chat_body)

    async def _generate(
        self,
        engine: ChatEngine,
        body: _Body,
        gate: _SlotGate,
        translator: ChunkTranslator,
    ) -> AsyncGenerator[Delta, None]:
        """One chat completion on a slot already taken from `gate` (given back when
        llama.cpp returns), its chunks through `translator`."""
        # one prompt-progress chunk per evaluated batch: the callback's chance to cancel
        generation = _Generation(
            engine,
            _Body({**body.body, "return_progress": True}, completion=body.completion),
            gate,
            self._active,
            self._stops,
        )
        if self._closed:
            gate.release()
            raise ProviderError("the local provider is closed", code="server_error", status=503)
        generation.start()
        try:
            async for chunk in generation.chunks():
                if generation.stop.is_set():
                    continue  # stopped early: wait for llama.cpp to return (see below)
                for delta in translator.feed(chunk):
                    yield delta
                if translator.done:
                    # The reply's first call was rejected as soon as it was whole: its
                    # remaining tokens would change nothing. llama.cpp stops at the next
                    # token, and the pass after this one is sent only once it has
                    # returned, so that it finds this slot, which holds its prompt, free.
                    generation.stop.set()
            for delta in translator.finish():
                yield delta
        finally:
            generation.stop.set()


_CORRECTIONS = 2
"""How many more re-samples a re-sample rejected with a `Correction` gets: each fixes
one mistake ("And to yen?" after 20 GBP in euros: the earlier call repeated, then 20
taken as euros, then the call asked for)."""


def _held_to(plan: ChatPlan, names: Sequence[str]) -> ChatPlan:
    """`plan` with a call grammar that admits calls to `names` alone (a re-sample held
    to the call of those tools: `ChunkTranslator.held_to`), or `plan` itself."""
    tools = [tool for tool in plan.tools if tool.get("name") in names]
    if not tools or plan.grammar is None:
        return plan
    grammar = call_grammar(tools, parallel=plan.parallel_tool_calls, others=False)
    return dataclasses.replace(plan, grammar=grammar)


def _prose(chat_body: dict[str, Any]) -> _Body:
    """`chat_body` under the grammar that admits no call (`text_body`)."""
    text = text_body(chat_body)
    return _Body(text, completion="prompt" in text)


def _for_no_tool(plan: ChatPlan, calls: Sequence[ParsedCall]) -> bool:
    """Whether rejected `calls`, in a first decision, name a function no tool has, or
    call a real tool for a message that asks for none (`unrelated`)."""
    if plan.answer_turn:
        return False
    if any(call.name not in plan.tool_names for call in calls):
        return True
    if other_day_tools(plan.tools, plan.items):
        return False  # the text pass, whose line says the day cannot be looked up
    pairs = [(call.name, call.arguments) for call in calls]
    return unrelated(pairs, plan.tools, plan.items, plan.instructions)


@dataclass(frozen=True, slots=True)
class _Body:
    """A request for llama.cpp: to its chat endpoint, or (`completion`) to its raw one."""

    body: dict[str, Any]
    completion: bool = False


class _Generation:
    """One request running in a worker thread, holding one slot of its model.

    `handle_chat_completions` blocks, so it runs in a thread that hands chunks to the
    event loop. The generation owns its slot from `start()` until llama.cpp returns,
    and then gives it back, however it ended: so no more than `slots` requests ever
    reach llama.cpp. `stop` makes the chunk callback cancel the request.
    """

    def __init__(
        self,
        engine: ChatEngine,
        body: _Body,
        gate: _SlotGate,
        active: set[threading.Thread],
        stops: set[threading.Event],
    ) -> None:
        self.stop = threading.Event()
        self._engine = engine
        self._body = body
        self._gate = gate
        self._active = active
        self._stops = stops
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._thread = threading.Thread(target=self._work, name="turnstream-local", daemon=True)

    def start(self) -> None:
        self._stops.add(self.stop)
        self._active.add(self._thread)
        self._thread.start()

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        """The chunks llama.cpp streams; raises `ProviderError` if it failed."""
        while (item := await self._queue.get()) is not _DONE:
            if isinstance(item, _Failure):
                raise ProviderError(
                    f"local model failed: {item.error}", code="model_error"
                ) from item.error
            yield item  # type: ignore[misc]  # everything else on the queue is a chunk

    def _deliver(self, item: object) -> bool:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone: nobody is listening
            self.stop.set()
        return self.stop.is_set()

    def _on_chunk(self, chunk: dict[str, Any]) -> bool:
        # Returning True makes llama.cpp cancel the request: between two batches of
        # prompt evaluation (a progress chunk) or at the next token.
        if self.stop.is_set():
            return True
        if "prompt_progress" in chunk and not chunk.get("choices"):
            return False
        return self._deliver(chat_chunk(chunk) if self._body.completion else chunk)

    def _work(self) -> None:
        try:
            if self._body.completion:
                self._engine.handle_completions(self._body.body, self._on_chunk)
            else:
                self._engine.handle_chat_completions(self._body.body, self._on_chunk)
        except BaseException as exc:
            self._deliver(_Failure(exc))
        finally:
            # llama.cpp is done with this request: its slot may take the next one
            self._gate.release()
            self._deliver(_DONE)
            self._active.discard(threading.current_thread())
            self._stops.discard(self.stop)


def _join_all(threads: Iterable[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
