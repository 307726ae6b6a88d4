#!/usr/bin/env python3
"""The chat page of `dwarfstar serve` in a real headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium).

    chat_page.py BASE_URL             # open server: send, watch the text stream in, stop, send again
    chat_page.py BASE_URL --key KEY   # behind --api-key: the page asks for the key, refuses a wrong one

Exits non-zero with the failed checks listed.
"""

import json
import os
import sys
import time
import urllib.request

os.environ.setdefault("SE_OFFLINE", "true")   # never let Selenium look for drivers online
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BASE = sys.argv[1].rstrip("/")
KEY = (sys.argv[sys.argv.index("--key") + 1] if "--key" in sys.argv else None) or None
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,800"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)


def wait(driver, condition, seconds=60):
    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(lambda d: condition())


def last_answer(driver):
    answers = driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")
    return answers[-1] if answers else None


def send(driver, text):
    box = driver.find_element(By.ID, "prompt")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "send").click()


def health():
    headers = {"Authorization": "Bearer " + KEY} if KEY else {}
    with urllib.request.urlopen(urllib.request.Request(BASE + "/health", headers=headers), timeout=10) as r:
        return json.load(r)


driver = browser()
try:
    driver.get(BASE + "/")
    check(driver.title == "DwarfStar", "the page loads: %r" % driver.title)
    if KEY:
        wait(driver, lambda: driver.find_element(By.ID, "keybox").is_displayed(), 20)
        check("needs an API key" in driver.find_element(By.ID, "keyerror").text, "behind --api-key the page asks for the key")
        driver.find_element(By.ID, "key").send_keys("wrong key")
        driver.find_element(By.ID, "savekey").click()
        time.sleep(0.5)
        check(driver.find_element(By.ID, "keybox").is_displayed(), "a wrong key is refused (the page still asks)")
        field = driver.find_element(By.ID, "key")
        field.clear()
        field.send_keys(KEY)
        driver.find_element(By.ID, "savekey").click()
        wait(driver, lambda: not driver.find_element(By.ID, "keybox").is_displayed(), 20)
        check(True, "the right key is taken")
    wait(driver, lambda: "context" in driver.find_element(By.ID, "model").text, 20)
    check(True, "the model is shown: %s" % driver.find_element(By.ID, "model").text)

    # Send a message: text streams in (it grows while the answer is open), then press Stop.
    driver.find_element(By.TAG_NAME, "summary").click()
    driver.find_element(By.ID, "system").send_keys("You are a storyteller.")
    send(driver, "Tell me a long story about a dragon and a lighthouse keeper.")
    wait(driver, lambda: last_answer(driver) is not None and last_answer(driver).find_element(By.CLASS_NAME, "text").text.strip() != "")
    first = len(last_answer(driver).find_element(By.CLASS_NAME, "text").text)
    wait(driver, lambda: len(last_answer(driver).find_element(By.CLASS_NAME, "text").text) > first + 10, 60)
    check(driver.find_element(By.ID, "send").get_attribute("disabled") is not None, "Send is disabled while an answer streams")
    check(not last_answer(driver).get_attribute("data-done"), "the answer is still open while text arrives")
    driver.find_element(By.ID, "stop").click()
    wait(driver, lambda: last_answer(driver).get_attribute("data-done") == "stopped", 20)
    stopped_text = last_answer(driver).find_element(By.CLASS_NAME, "text").text
    check(len(stopped_text) > first, "streamed text arrived before Stop (%d characters)" % len(stopped_text))
    check("stopped" in last_answer(driver).find_element(By.CLASS_NAME, "speed").text, "the speed line says it was stopped")
    check(driver.find_element(By.ID, "send").get_attribute("disabled") is None, "Send is enabled again after Stop")
    time.sleep(0.5)
    check(last_answer(driver).find_element(By.CLASS_NAME, "text").text == stopped_text, "nothing more arrives after Stop")
    wait(driver, lambda: health()["active"] == 0, 20)
    check(True, "the server stopped generating (no active sequence)")

    # A second message runs to the end (the server's default max tokens is small) with the speed line.
    send(driver, "Now say goodbye.")
    wait(driver, lambda: len(driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")) == 2
         and last_answer(driver).get_attribute("data-done") == "complete", 120)
    speed = last_answer(driver).find_element(By.CLASS_NAME, "speed").text
    check("prompt tokens" in speed and "generated" in speed and "t/s" in speed, "the speed line: %s" % speed)
    check(last_answer(driver).find_element(By.CLASS_NAME, "text").text.strip() != "", "the second answer has text")
    check(len(driver.find_elements(By.CSS_SELECTOR, ".msg.user")) == 2, "both messages are shown")
finally:
    driver.quit()

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all chat page checks passed")
