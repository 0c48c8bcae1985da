#!/usr/bin/env python3
"""Walks the tutorial in headless Chromium against a running `portcullis up`.

    python3 scripts/browser-check.py [--gateway http://127.0.0.1:8000] [--ui http://127.0.0.1:4455] [--shots DIR]

Needs Debian's chromium + chromium-driver and `pip install selenium`. Prints each step and
exits non-zero on the first step that does not behave as the tutorial says.
"""
import argparse
import json
import os
import sys
import time
import uuid

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", default="http://127.0.0.1:8000")
    ap.add_argument("--ui", default="http://127.0.0.1:4455")
    ap.add_argument("--shots", default=None, help="directory for screenshots")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    args = ap.parse_args()

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={args.width},{args.height}"]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    step = 0

    def shot(name: str) -> None:
        if args.shots:
            os.makedirs(args.shots, exist_ok=True)
            driver.save_screenshot(os.path.join(args.shots, f"{name}.png"))

    def check(cond: bool, what: str) -> None:
        nonlocal step
        step += 1
        print(f"{'ok ' if cond else 'FAIL'} {step}. {what} (url: {driver.current_url})")
        if not cond:
            shot(f"failure-{step}")
            driver.quit()
            sys.exit(1)

    def page_json():
        try:
            return json.loads(driver.find_element(By.TAG_NAME, "body").text)
        except Exception:
            return None

    try:
        driver.get(f"{args.gateway}/hello")
        check(driver.current_url.startswith(f"{args.ui}/login"), "/hello redirects to the login page")
        shot("login")
        driver.find_element(By.PARTIAL_LINK_TEXT, "Sign up").click()
        check(driver.current_url.startswith(f"{args.ui}/registration"), "'Sign up' opens registration")
        shot("registration")
        email = f"browser-{uuid.uuid4().hex[:10]}@example.org"
        driver.find_element(By.NAME, "traits.email").send_keys(email)
        driver.find_element(By.NAME, "password").send_keys("a long and unusual passphrase 7")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit][value=password], input[type=submit][value=password]").click()
        time.sleep(0.5)
        check(page_json() == {"message": "Hello microservice"}, f"signed up as {email}, back on /hello")
        shot("hello")
        driver.get(f"{args.gateway}/world")
        check(page_json() == {"message": "World microservice"}, "/world answers with the session")
        driver.get(f"{args.ui}/")
        shot("welcome")
        driver.find_element(By.PARTIAL_LINK_TEXT, "Log out").click()
        time.sleep(0.5)
        driver.get(f"{args.gateway}/hello")
        check(driver.current_url.startswith(f"{args.ui}/login"), "after logout /hello redirects to login again")
    finally:
        driver.quit()
    print("browser check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
