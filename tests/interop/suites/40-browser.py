#!/usr/bin/env python3
"""`reg serve` in a real browser (Debian's chromium, driven by Playwright).

usage: 40-browser.py --reg BIN --fixtures DIR --scratch DIR [--screenshots DIR]

Pushes the Lightning fixture series (mlp, mlp-finetune, monitored) into a
fresh registry, starts `reg serve --port 0`, and checks in the browser:
every page loads and shows its plots (inline SVG), the page script runs
(local times, sorting, filtering), a click from the model page's form
leads to a diff with one bar per changed tensor, downloads are the pushed
bytes, dark mode changes the colours, pages read without JavaScript, and
nothing is fetched from anywhere but the server. Screenshots of the model
and diff pages go to SCRATCH (and --screenshots DIR).

Each check prints PASS or FAIL; the last line is `N passed, M failed`.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

results = []


def check(name):
    """Run a check function, recording PASS or FAIL."""
    def wrap(fn):
        try:
            fn()
            results.append((name, None))
            print(f"PASS {name}", flush=True)
        except Exception as e:  # a failed check is a line, not a crash
            reason = f"{type(e).__name__}: {e}".replace("\n", " ")[:400]
            results.append((name, reason))
            print(f"FAIL {name}: {reason}", flush=True)
            if os.environ.get("REG_BROWSER_TRACE"):
                traceback.print_exc()
        return fn
    return wrap


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reg", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--screenshots")
    a = ap.parse_args()
    scratch = Path(a.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, REG_HOME=str(scratch / "registry"))
    env.pop("NO_COLOR", None)

    def reg(*args):
        out = subprocess.run([a.reg, *args], env=env, cwd=scratch, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"reg {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    fixtures = Path(a.fixtures) / "lightning"
    for series in ["mlp", "mlp-finetune", "monitored"]:
        for f in sorted((fixtures / series).glob("*.ckpt")):
            reg("push", str(f), "--name", series, "-q")
    reg("ls")  # waits for the background deltas

    server = subprocess.Popen([a.reg, "serve", "--port", "0"], env=env, cwd=scratch,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if "http://" not in line:
            raise RuntimeError(f"reg serve did not start: {line!r} {server.stderr.read()}")
        base = "http://" + line.split("http://", 1)[1].split("/", 1)[0]
        print(f"browser: {base}, chromium {CHROMIUM}", flush=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                run_checks(browser, base, reg, fixtures, scratch, a.screenshots)
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    failed = sum(1 for _, r in results if r)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def run_checks(browser, base, reg, fixtures, scratch, screenshots):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
    foreign = []
    errors = []
    ctx.on("request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:") else foreign.append(r.url))
    page = ctx.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def goto(path):
        resp = page.goto(base + path)
        assert resp is not None and resp.status == 200, f"{path}: status {resp and resp.status}"
        return resp

    @check("index lists every model, script shows local times")
    def _():
        goto("/")
        assert "Models" in page.title(), page.title()
        for name in ["mlp", "mlp-finetune", "monitored"]:
            assert page.locator(f'a[href="/m/{name}"]').count() == 1, name
        t = page.locator("time").first
        assert t.get_attribute("title", timeout=2000), "the script did not convert <time>"
        assert not t.inner_text().endswith("UTC")

    @check("model page: score plot and bytes plot")
    def _():
        goto("/m/monitored")
        log = json.loads(reg("log", "monitored", "--json"))
        line = page.locator("svg.plot.line")
        assert line.count() == 1, "no score plot"
        assert line.locator("circle.point").count() == len(log)
        assert line.locator("circle.point.best").count() == 1
        bars = page.locator("svg.plot.bars rect")
        assert bars.count() == 3 * len(log), bars.count()
        box = line.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100, box

    @check("model page: sorting the versions table")
    def _():
        goto("/m/mlp")
        first = lambda: page.locator("#versions tbody tr").first.locator("td").nth(2).inner_text()
        assert first() == "v4", first()
        page.locator("#versions thead th", has_text="version").click()
        assert first() == "v1", f"ascending sort gave {first()}"
        page.locator("#versions thead th", has_text="version").click()
        assert first() == "v4"

    @check("click from the model page to a diff")
    def _():
        goto("/m/mlp")
        page.locator('input[name="a"][value="mlp@v1"]').check()
        page.locator('input[name="b"][value="mlp@v3"]').check()
        with page.expect_navigation():
            page.locator("#diff-button").click()
        assert "/diff?" in page.url and "a=mlp%40v1" in page.url and "b=mlp%40v3" in page.url, page.url
        d = json.loads(reg("diff", "mlp@v1", "mlp@v3", "--stats", "--json"))
        want = sum(1 for c in d["tensors"]["changed"] if isinstance(c.get("rel_l2"), (int, float)))
        plot = page.locator("svg.plot.changes")
        assert plot.count() >= 1, "no tensor-change plot"
        assert page.locator("svg.plot.changes rect.change").count() == want
        assert page.locator("svg.plot.changes circle.same").count() == len(d["tensors"]["identical"])
        assert d["tensors"]["changed"][0]["path"] in page.content()
        shot(page, scratch, screenshots, "serve-diff.png")

    @check("a diff link in the versions table")
    def _():
        goto("/m/mlp-finetune")
        with page.expect_navigation():
            page.locator("#versions a", has_text="diff").first.click()
        assert page.locator("h1").inner_text().replace(" ", "") == "mlp-finetune@v1→mlp-finetune@v2"

    @check("version page: every tensor, filter box, download")
    def _():
        goto("/m/mlp/v2")
        show = json.loads(reg("show", "mlp@v2", "--json"))
        rows = page.locator("#tensor-table tbody tr")
        assert rows.count() == len(show["tensors"]), rows.count()
        box = page.locator('input[data-filter="tensor-table"]')
        box.fill("encoder")
        want = sum(1 for t in show["tensors"] if "encoder" in t["path"].lower())
        assert page.locator("#tensor-table tbody tr:visible").count() == want
        href = page.locator("a", has_text="Download").first.get_attribute("href")
        body = page.request.get(base + href).body()
        assert body == (fixtures / "mlp" / "epoch=01.ckpt").read_bytes(), "download differs"

    @check("JSON twin in the browser")
    def _():
        r = page.request.get(base + "/api/ls")
        assert r.status == 200 and r.text() == reg("ls", "--json")

    @check("model page screenshot")
    def _():
        goto("/m/monitored")
        shot(page, scratch, screenshots, "serve-model.png")

    @check("dark mode changes the colours")
    def _():
        goto("/m/mlp")
        light = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        dark_ctx = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
        try:
            dp = dark_ctx.new_page()
            dp.goto(base + "/m/mlp")
            dark = dp.evaluate("getComputedStyle(document.documentElement).backgroundColor")
            assert light != dark, (light, dark)
            shot(dp, scratch, None, "serve-model-dark.png")
        finally:
            dark_ctx.close()

    @check("pages read without JavaScript")
    def _():
        nojs = browser.new_context(java_script_enabled=False)
        try:
            np = nojs.new_page()
            for path in ["/", "/m/monitored", "/m/mlp/v1", "/diff?a=mlp@v1&b=mlp@v2"]:
                r = np.goto(base + path)
                assert r.status == 200, path
            assert np.locator("svg.plot.changes").count() >= 1
            np.goto(base + "/")
            assert np.locator("time").first.inner_text().endswith("UTC")
        finally:
            nojs.close()

    @check("no script errors, nothing fetched from elsewhere")
    def _():
        assert not errors, errors
        assert not foreign, foreign

    @check("unknown pages are 404 pages")
    def _():
        r = page.goto(base + "/m/nope")
        assert r.status == 404 and "no model named" in page.content()

    ctx.close()


def shot(page, scratch, screenshots, name):
    path = scratch / name
    page.screenshot(path=str(path), full_page=True)
    if screenshots:
        Path(screenshots).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(screenshots) / name)


if __name__ == "__main__":
    sys.exit(main())
