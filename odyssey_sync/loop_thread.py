"""One asyncio event loop owned by one daemon thread, with a blocking bridge.

Public: every client connection, spectator and local server runs its loop
in a :class:`LoopThread`, and so can an application that wants the same
blocking bridge. The thread is a daemon so an unclosed owner never keeps the
interpreter alive; owners still close their sessions on the loop before
calling :meth:`LoopThread.stop`, or aiortc's decoder threads can outlive it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

from ._deadline import Deadline, TimeLimit

__all__ = ["LoopThread", "cancel_and_wait", "create_task", "wait_future"]

T = TypeVar("T")


class LoopThread:
    """An event loop running in a thread of its own.

    ``run()`` executes a coroutine on the loop and blocks the caller until it
    finishes, the timeout expires (the coroutine is then cancelled and
    :class:`OdysseyTimeoutError` raised) or the caller is interrupted (the
    coroutine is cancelled and :class:`KeyboardInterrupt` re-raised).
    """

    def __init__(self, name: str = "odyssey-loop") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop; raises if the thread is not started."""
        if self._loop is None or not self.is_running:
            raise RuntimeError(f"{self._name} is not running")
        return self._loop

    @property
    def is_running(self) -> bool:
        """Whether the thread and its loop are alive."""
        return self._thread is not None and self._thread.is_alive() and self._loop is not None

    @property
    def thread(self) -> threading.Thread | None:
        """The owning thread, if started."""
        return self._thread

    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def start(self) -> None:
        """Start the thread and wait until its loop runs. Idempotent."""
        if self.is_running:
            return
        self._ready.clear()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        try:
            self._loop.run_forever()
        finally:
            self._cancel_leftovers()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()

    def _cancel_leftovers(self) -> None:
        assert self._loop is not None
        tasks = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the loop; returns a thread-safe future."""
        try:
            loop = self.loop
        except RuntimeError:
            coro.close()
            raise
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run a plain callback on the loop thread (thread-safe)."""
        self.loop.call_soon_threadsafe(callback, *args)

    def run(self, coro: Coroutine[Any, Any, T], timeout: TimeLimit = None, *, what: str = "operation") -> T:
        """Run ``coro`` on the loop and wait for its result, until ``timeout`` (seconds or the caller's
        :class:`~odyssey_sync._deadline.Deadline`; ``None``: no limit).

        Raises :class:`OdysseyTimeoutError` naming ``what`` (or the deadline's call) on expiry.
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError(
                "a blocking odyssey_sync call was made from the event-loop thread; "
                "call it from your own thread instead"
            )
        future = self.submit(coro)
        return wait_future(future, timeout, what=what)

    def stop(self, timeout: float = 2.0) -> None:
        """Cancel what is left on the loop, stop it and join the thread (bounded)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if thread.is_alive() and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass
        if threading.current_thread() is not thread:
            thread.join(timeout)
        self._thread = None
        self._loop = None


def wait_future(future: concurrent.futures.Future[T], timeout: TimeLimit, *, what: str = "operation") -> T:
    """Wait for a concurrent future in short slices (Ctrl+C gets through); cancel it on timeout or interrupt."""
    deadline = Deadline.of(timeout, what)
    try:
        while True:
            if deadline.expired():
                future.cancel()
                raise deadline.error()
            try:
                return future.result(deadline.slice())
            except concurrent.futures.TimeoutError:
                if future.done() and not future.cancelled():
                    return future.result(0)
                continue
    except BaseException:
        future.cancel()
        raise


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel a task and wait until it is gone, swallowing its outcome."""
    if task is None or task.done():
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def create_task(coro: Awaitable[T], *, name: str | None = None) -> asyncio.Task[T]:
    """``asyncio.ensure_future`` with a name; the caller keeps the reference."""
    task = asyncio.ensure_future(coro)
    if name:
        task.set_name(name)
    return task
