"""Small helpers about local processes, shared by the agent, the runners and notebook discovery, and
the one thread that tells the local runners the moment a run's process ends (``watcher()``)."""

from __future__ import annotations

import os
import selectors
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

SLOW_LOOK_S = 5.0  # without inotify: how often watched files are looked for


def process_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host (even if owned by another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# inotify(7) flags, from <sys/inotify.h>.
IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x2, 0x8, 0x80, 0x100
IN_IGNORED, IN_Q_OVERFLOW = 0x8000, 0x4000
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


class _Inotify:
    """A non-blocking inotify descriptor through libc (ctypes: the standard library has no binding)."""

    def __init__(self) -> None:
        import ctypes
        import ctypes.util

        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.fd = fd

    def add(self, folder: str, mask: int) -> int:
        import ctypes

        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(folder), mask)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder} failed")
        return wd

    def remove(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)

    def read(self) -> list[tuple[int, int, str]]:
        """The pending events as (wd, mask, name); [] when there are none."""
        events, data = [], b""
        try:
            while chunk := os.read(self.fd, 65536):
                data += chunk
        except BlockingIOError:
            pass
        at = 0
        while at + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, at)
            name = data[at + _EVENT.size : at + _EVENT.size + length].rstrip(b"\0")
            events.append((wd, mask, os.fsdecode(name)))
            at += _EVENT.size + length
        return events

    def close(self) -> None:
        os.close(self.fd)


def inotify_folder(folder: str, mask: int = IN_MODIFY | IN_MOVED_TO | IN_CREATE) -> int | None:
    """A non-blocking inotify descriptor that becomes readable on ``mask`` events in ``folder``; None
    where there is no inotify (not Linux) or the folder cannot be watched."""
    try:
        notify = _Inotify()
    except (OSError, AttributeError):
        return None
    try:
        notify.add(folder, mask)
    except OSError:
        notify.close()
        return None
    return notify.fd


def drain(fd: int) -> None:
    """Read and drop everything pending on a non-blocking descriptor."""
    try:
        while os.read(fd, 65536):
            pass
    except BlockingIOError:
        pass


Callback = Callable[[], None]


class EndWatcher:
    """One daemon thread that calls back when a watched process ends or a watched file appears.

    Processes: a pidfd each (``os.pidfd_open``, Linux ≥ 5.3; readable when the process ends, whoever
    its parent is), else a thread per process blocked in ``Popen.wait``. Files: inotify on their
    folders (a file written atomically arrives by rename, IN_MOVED_TO), else a look every
    ``SLOW_LOOK_S``. The thread sleeps in ``select`` with no timeout while it has nothing to look
    for, so it costs nothing idle. Each callback is called once, from the watcher's thread, and
    must be quick (set a flag, wake a loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            self._notify: _Inotify | None = _Inotify()
            self._selector.register(self._notify.fd, selectors.EVENT_READ, None)
        except (OSError, AttributeError):
            self._notify = None
        self._folders: dict[str, int] = {}  # folder → watch descriptor
        self._files: dict[int, dict[str, list[Callback]]] = {}  # wd → file name → callbacks
        self._slow: dict[Path, list[Callback]] = {}  # files looked for without inotify
        self._pidfds: dict[int, tuple[Callback, Any]] = {}  # pidfd → (callback, Popen or None)
        self.wakeups = 0  # how often the thread woke (tests count them: an idle watcher stays at 0)
        self._thread = threading.Thread(target=self._loop, name="launch-end-watch", daemon=True)
        self._thread.start()

    @property
    def uses_inotify(self) -> bool:
        return self._notify is not None

    def watch_file(self, path: Path, callback: Callback) -> None:
        """``callback()`` once ``path`` exists (at once when it already does)."""
        path = Path(path)
        folder = str(path.parent)
        if self._notify is not None:
            with self._lock:
                wd = self._folders.get(folder)
                if wd is None:
                    try:
                        wd = self._notify.add(folder, IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE)
                    except OSError:
                        wd = None
                    else:
                        self._folders[folder] = wd
                if wd is not None:
                    self._files.setdefault(wd, {}).setdefault(path.name, []).append(callback)
            if wd is None:
                self._watch_slowly(path, callback)
        else:
            self._watch_slowly(path, callback)
        if path.exists():  # it came before the watch did
            self._fire_file(path)

    def watch_process(
        self, pid: int, callback: Callback, popen: object = None, still_ours: Callable[[], bool] | None = None
    ) -> None:
        """``callback()`` once the process ``pid`` ends. ``popen``: the ``subprocess.Popen`` when it is
        this process's child (it is reaped here). ``still_ours``: checked once the pidfd is open, so a
        pid reused since the caller looked it up is not watched."""
        pidfd_open = getattr(os, "pidfd_open", None)
        fd = None
        if pidfd_open is not None:
            try:
                fd = pidfd_open(pid)
            except OSError:
                callback()  # no such process: it has ended already
                return
        if fd is not None and still_ours is not None and not still_ours():
            os.close(fd)
            callback()
            return
        if fd is None:
            if popen is None:
                return  # not our child and no pidfd: the file watch and the poll tell
            threading.Thread(
                target=self._wait_child, args=(popen, callback), name="launch-end-wait", daemon=True
            ).start()
            return
        with self._lock:
            self._pidfds[fd] = (callback, popen)
            self._selector.register(fd, selectors.EVENT_READ, None)
        self._kick()

    def watching(self) -> int:
        """How many processes and files are watched now."""
        with self._lock:
            files = sum(len(names) for names in self._files.values()) + len(self._slow)
            return files + len(self._pidfds)

    # -- the thread ------------------------------------------------------------------------

    def _kick(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _watch_slowly(self, path: Path, callback: Callback) -> None:
        with self._lock:
            self._slow.setdefault(path, []).append(callback)
        self._kick()

    def _wait_child(self, popen, callback: Callback) -> None:
        popen.wait()
        callback()

    def _loop(self) -> None:
        while True:
            with self._lock:
                timeout = SLOW_LOOK_S if self._slow else None
            ready = self._selector.select(timeout)
            self.wakeups += 1
            for key, _ in ready:
                if key.fd == self._wake_r:
                    drain(self._wake_r)
                elif self._notify is not None and key.fd == self._notify.fd:
                    self._read_notify()
                else:
                    self._process_ended(key.fd)
            self._look_slowly()

    def _read_notify(self) -> None:
        assert self._notify is not None
        for wd, mask, name in self._notify.read():
            if mask & IN_Q_OVERFLOW:  # events were lost: look at every watched file
                with self._lock:
                    watched = [(wd_, n) for wd_, names in self._files.items() for n in names]
                for wd_, n in watched:
                    self._fire(wd_, n, only_if_exists=True)
            elif mask & IN_IGNORED:  # the folder is gone: its files will never appear
                with self._lock:
                    self._files.pop(wd, None)
                    self._folders = {f: w for f, w in self._folders.items() if w != wd}
            elif name:
                self._fire(wd, name)

    def _fire(self, wd: int, name: str, only_if_exists: bool = False) -> None:
        with self._lock:
            names = self._files.get(wd)
            if not names or name not in names:
                return
            folder = next((f for f, w in self._folders.items() if w == wd), None)
            if only_if_exists and (folder is None or not (Path(folder) / name).exists()):
                return
            callbacks = names.pop(name)
            if not names:
                del self._files[wd]
                if folder is not None:
                    del self._folders[folder]
                if self._notify is not None:
                    self._notify.remove(wd)
        for callback in callbacks:
            _safely(callback)

    def _fire_file(self, path: Path) -> None:
        with self._lock:
            wd = self._folders.get(str(path.parent))
            callbacks = self._slow.pop(path, [])
        if wd is not None:
            self._fire(wd, path.name)
        for callback in callbacks:
            _safely(callback)

    def _look_slowly(self) -> None:
        with self._lock:
            found = [path for path in self._slow if path.exists()]
        for path in found:
            self._fire_file(path)

    def _process_ended(self, fd: int) -> None:
        with self._lock:
            callback, popen = self._pidfds.pop(fd)
            self._selector.unregister(fd)
        os.close(fd)
        if popen is not None:
            popen.poll()  # reap it now: no zombie waits for the next status read
        _safely(callback)


def _safely(callback: Callback) -> None:
    try:
        callback()
    except Exception:  # noqa: BLE001 - a broken callback must not stop the watcher
        pass


_watcher: EndWatcher | None = None
_watcher_lock = threading.Lock()


def watcher() -> EndWatcher:
    """This process's ``EndWatcher`` (started on first use)."""
    global _watcher
    with _watcher_lock:
        if _watcher is None:
            _watcher = EndWatcher()
        return _watcher
