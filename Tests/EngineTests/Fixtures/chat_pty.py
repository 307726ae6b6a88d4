"""Drives `dwarfstar chat` through a real pseudo-terminal: two turns, Ctrl-C in the middle of an
answer (the answer stops, the prompt comes back, the chat goes on), /save, /reset, /load (the next
turn needs no prefill of the restored history), /list, /help, /quit.
Usage: python3 chat_pty.py BINARY MODEL_PATH ; exit status 0 on success."""
import os, sys, tempfile, time
import pexpect

binary, model = sys.argv[1], sys.argv[2]
env = dict(os.environ, DWARFSTAR_SESSIONS=tempfile.mkdtemp(prefix="dskv-pty-"))
child = pexpect.spawn(binary, ["chat", "-m", model, "--temp", "0", "-n", "400", "-t", "2"],
                      encoding="utf-8", timeout=120, dimensions=(40, 200), env=env)
child.logfile_read = sys.stdout

def prompt():
    child.expect_exact("> ")

prompt()
child.sendline("/help")
child.expect_exact("/reset")
prompt()
# Turn 1: a short answer that finishes on its own.
child.sendline("What is the capital of France? Answer in one word.")
child.expect(r"\[prompt (\d+) tokens, (\d+) new")
first_prompt = int(child.match.group(1))
prompt()
# Turn 2: a long answer, interrupted with Ctrl-C after some output.
story = "Write a very long story about a dragon who learns to cook. Make it at least 300 words."
child.sendline(story)
child.expect_exact(story)            # the terminal's echo of the input line
child.expect(r"\S+\s+\S+\s+\S+\s+\S+\s+\S+")   # then some streamed answer
time.sleep(0.3)
child.sendintr()
child.expect_exact("[stopped]")
child.expect(r"\[prompt (\d+) tokens, (\d+) new")
second_prompt, second_new = int(child.match.group(1)), int(child.match.group(2))
prompt()
# The KV cache was kept: turn 2 evaluated only its new tokens, not the history.
assert second_new < second_prompt, (second_prompt, second_new)
assert second_prompt > first_prompt
# Turn 3 after the interruption still works.
child.sendline("Say hello.")
child.expect(r"\[prompt (\d+) tokens, (\d+) new")
third_prompt, third_new = int(child.match.group(1)), int(child.match.group(2))
assert third_new < third_prompt, (third_prompt, third_new)
prompt()
child.sendline("/save pty-test")
child.expect(r"\(saved (\d+) tokens")
saved = int(child.match.group(1))
prompt()
child.sendline("/reset")
child.expect_exact("(conversation cleared)")
prompt()
child.sendline("/load pty-test")
child.expect(r"\(loaded (\d+) tokens, (\d+) messages")
assert int(child.match.group(1)) == saved, (saved, child.match.group(1))
prompt()
child.sendline("/list")
child.expect_exact("pty-test")
prompt()
child.sendline("/load ../nope")
child.expect_exact("error: session name")
prompt()
# The restored conversation goes on without prefilling its history again: at least turn 3's whole
# prompt comes from the loaded cache (the last answer itself may re-tokenize differently from the
# generated tokens, so the reuse can stop inside it, as it would without /save and /load).
child.sendline("Thanks.")
child.expect(r"\[prompt (\d+) tokens, (\d+) new")
fourth_prompt, fourth_new = int(child.match.group(1)), int(child.match.group(2))
assert fourth_prompt > saved and fourth_new <= fourth_prompt - third_prompt + 2, (saved, third_prompt, fourth_prompt, fourth_new)
prompt()
child.sendline("/quit")
child.expect(pexpect.EOF)
child.close()
print("\nCHAT-PTY-OK", first_prompt, second_prompt, second_new, third_prompt, third_new)
