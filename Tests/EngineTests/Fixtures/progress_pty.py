#!/usr/bin/env python3
"""Progress bars of long work: drawn on a terminal (a pseudo-terminal via pexpect), absent when standard
error is a pipe.

    progress_pty.py DWARFSTAR SMOLLM2_GGUF WORKDIR

`synth` of a 0.4 GB file (the writer's bar) and `run` with a prompt of about 2,700 tokens in batches of
64 (the prompt's bar, cleared before the answer). Prints PROGRESS-PTY-OK when every check passes.
"""

import os
import subprocess
import sys

import pexpect

DWARFSTAR, MODEL, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def on_terminal(arguments):
    child = pexpect.spawn(DWARFSTAR, arguments, timeout=600, env=dict(os.environ, TERM="xterm"))
    output = child.read().decode("utf-8", "replace")
    child.close()
    return child.exitstatus, output


def on_pipes(arguments):
    done = subprocess.run([DWARFSTAR] + arguments, capture_output=True, timeout=600)
    return done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")


synth = ["synth", "-o", os.path.join(WORK, "progress.gguf"), "--layers", "4", "--type", "q8_0", "--hidden", "2048"]
status, output = on_terminal(synth)
check(status == 0, "synth on a terminal exits 0")
check("synth [" in output and "100%" in output and "MB/s" in output, "synth draws its bar on a terminal")
check(output.rstrip().endswith("progress.gguf"), "the bar's line is cleared before the last line")
status, out, err = on_pipes(synth)
check(status == 0 and "█" not in err and "\r" not in err and "█" not in out, "no bar when standard error is a pipe")

prompt = "Once upon a time there was a lighthouse by the sea. " * 240
run = ["run", "-m", MODEL, "--raw", "-p", prompt, "-n", "4", "-b", "64", "-t", "2"]
status, output = on_terminal(run)
check(status == 0, "run on a terminal exits 0")
check("prompt [" in output and "tokens" in output and "t/s" in output, "a long prompt draws its bar on a terminal")
last_bar = output.rfind("prompt [")
cleared = output.find("\r\x1b[K", last_bar)
summary = output.find("load ", last_bar)
check(cleared > last_bar and 0 < summary and cleared < summary, "the prompt's bar is cleared before the answer and the summary")
status, out, err = on_pipes(run)
check(status == 0 and "█" not in err and "prompt [" not in err, "no prompt bar when standard error is a pipe")

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("PROGRESS-PTY-OK")
