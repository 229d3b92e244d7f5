"""Run `make`'s steps one after another, each with its name, its duration, and a live status while it runs.

    python3 scripts/steps.py [--title TITLE] NAME COMMAND [NAME COMMAND ...]

Every COMMAND runs in the shell. Bastion's own commands draw their own progress bars (on stderr), so they get
the terminal as it is; this prints `▶ [2/5] NAME` before and `✓ [2/5] NAME done in 12.3 s` after. A pip
install (a COMMAND with `-m pip install`) prints hundreds of lines, so its output is read instead: a status
line says what pip is doing (collecting which package, how many; installing how many) and how long it has
taken; pip's notices that this machine's pip configuration names index directories that do not exist
(`WARNING: Location '…' is ignored`) are counted in one line; anything else pip writes to stderr is shown
after the step, and everything it wrote when it fails. The first failing step stops the run with its status.

Standard library only: it runs before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

IGNORED_LOCATION = re.compile(r"^WARNING: Location '[^']*' is ignored: it is neither a file nor a directory\.$")
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
TTY = sys.stdout.isatty()
DIM, BOLD, GREEN, RED, RESET = (("\033[2m", "\033[1m", "\033[32m", "\033[31m", "\033[0m") if TTY
                                else ("", "", "", "", ""))  # fmt: skip


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


class PipWatcher:
    """Follows pip's normal-verbosity output and says what it is doing in one line."""

    def __init__(self) -> None:
        self.collected = 0
        self.installing = 0
        self.installed = 0
        self.current = "starting"
        self.ignored_locations = 0
        self.notes: list[str] = []  # stderr lines worth showing
        self.log: list[str] = []  # everything, for a failure

    def stdout(self, line: str) -> None:
        self.log.append(line)
        text = line.strip()
        if text.startswith("Collecting "):
            self.collected += 1
            self.current = f"collecting {text.split()[1]} ({self.collected} packages so far)"
        elif text.startswith("Requirement already satisfied"):
            self.collected += 1
            self.current = f"checking what is installed ({self.collected} packages)"
        elif text.startswith(("Building wheel for ", "Building editable for ")):
            self.current = "building " + text.split(" for ", 1)[1].split(" ", 1)[0]
        elif text.startswith("Preparing "):
            self.current = text.split(" (", 1)[0].split(":", 1)[0].lower()
        elif text.startswith("Installing collected packages:"):
            self.installing = len(text.split(":", 1)[1].split(","))
            self.current = f"installing {self.installing} package{'s' if self.installing != 1 else ''}"
        elif text.startswith("Successfully installed"):
            self.installed = len(text.split()) - 2

    def stderr(self, line: str) -> None:
        self.log.append(line)
        if IGNORED_LOCATION.match(line.strip()):
            self.ignored_locations += 1
        elif line.strip():
            self.notes.append(line.rstrip())

    def summary(self) -> str:
        if self.installed:
            return f"{self.installed} package{'s' if self.installed != 1 else ''} installed"
        return "already up to date" if self.collected else ""


def _follow(stream: IO[str], handle: Callable[[str], None]) -> None:
    for line in stream:
        handle(line)


def run_pip(command: str, label: str) -> tuple[int, str]:
    watcher = PipWatcher()
    proc = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PIP_PROGRESS_BAR": "off"})  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    readers = [threading.Thread(target=_follow, args=(stream, handle), daemon=True)
               for stream, handle in ((proc.stdout, watcher.stdout), (proc.stderr, watcher.stderr))]  # fmt: skip
    for reader in readers:
        reader.start()
    started = time.monotonic()
    tick = 0
    while proc.poll() is None:
        if TTY:
            elapsed = time.monotonic() - started
            status = f"  {SPINNER[tick % len(SPINNER)]} {label}: {watcher.current} · {duration(elapsed)}"
            width = shutil.get_terminal_size((100, 24)).columns
            sys.stdout.write("\r\033[K" + DIM + status[: width - 1] + RESET)
            sys.stdout.flush()
            tick += 1
        time.sleep(0.1)
    for reader in readers:
        reader.join()
    if TTY:
        sys.stdout.write("\r\033[K")
        sys.stdout.flush()
    if proc.returncode != 0:
        sys.stdout.write("".join(watcher.log[-80:]))
    elif watcher.notes:
        sys.stdout.write("\n".join(watcher.notes) + "\n")
    extra = watcher.summary()
    if watcher.ignored_locations:
        extra += (", " if extra else "") + (
            f"{watcher.ignored_locations} index locations in this machine's pip configuration do not exist (ignored)"
        )
    return proc.returncode, extra


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--title", default="")
    parser.add_argument("steps", nargs="+", metavar="NAME COMMAND")
    args = parser.parse_args(argv)
    if len(args.steps) % 2:
        parser.error("steps come in pairs: NAME COMMAND")
    steps = list(zip(args.steps[::2], args.steps[1::2], strict=True))
    began = time.monotonic()
    prefix = f"{args.title}: " if args.title else ""
    for n, (name, command) in enumerate(steps, 1):
        label = f"[{n}/{len(steps)}] {prefix}{name}"
        print(f"{BOLD}▶ {label}{RESET}", flush=True)
        started = time.monotonic()
        extra = ""
        if " -m pip install" in command:
            status, extra = run_pip(command, name)
        else:
            status = subprocess.run(command, shell=True, check=False).returncode
        took = duration(time.monotonic() - started)
        if status != 0:
            print(f"{RED}✗ {label} failed (exit status {status}) after {took}:{RESET} {shlex.quote(command)}",
                  flush=True)  # fmt: skip
            return status
        detail = f" {DIM}({extra}){RESET}" if extra else ""
        print(f"{GREEN}✓{RESET} {label} done in {took}{detail}", flush=True)
    if len(steps) > 1:
        print(f"{DIM}{prefix or 'all steps: '}{len(steps)} steps in {duration(time.monotonic() - began)}{RESET}",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
