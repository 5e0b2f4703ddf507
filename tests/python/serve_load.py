"""A bounded load on a running `sail serve`, through the official `openai` client.

CLIENTS threads each send REQUESTS chat completions, one after another, mixing text and image
(base64) requests, streamed and not; every answer is checked. Loopback only, a fixed number of
requests, then it stops. Prints one JSON object: requests, failed (with the first errors),
requests/s, latency p50/p95, and with --pid the server's RSS after a warm-up round (the same
load) and at the end. Used by cli/tests/serve.rs (the load test) and scripts/bench-serve.sh (the bench).
"""

import argparse
import base64
import json
import random
import statistics
import threading
import time

import openai


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def one(client, kind, image_uri, rng, max_tokens):
    """Sends one request of `kind` (0..3) and checks the answer; returns None or an error."""
    content = "Say something about the number %d." % rng.randrange(1000)
    if kind % 2:
        content = [{"type": "image_url", "image_url": {"url": image_uri}}, {"type": "text", "text": content}]
    args = dict(model="tiny", messages=[{"role": "user", "content": content}], max_tokens=max_tokens, temperature=0.8, seed=rng.randrange(1 << 31))
    if kind >= 2:
        chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **args))
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        usage = chunks[-1].usage
        if finish not in (["stop"], ["length"]) or usage is None:
            return "bad stream: finish %r, usage %r" % (finish, usage)
    else:
        r = client.chat.completions.create(**args)
        usage = r.usage
        if r.choices[0].finish_reason not in ("stop", "length") or not isinstance(r.choices[0].message.content, str):
            return "bad answer: %r" % r
    if not 1 <= usage.completion_tokens <= max_tokens or usage.prompt_tokens < 10:
        return "bad usage: %r" % usage
    if kind % 2 and usage.prompt_tokens < 100:
        return "the image was not in the prompt: %r" % usage
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", default="none")
    ap.add_argument("--image", required=True)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=25, help="per client")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--pid", type=int, help="the server's pid, for RSS")
    ap.add_argument("--warmup", type=int, help="requests per client before the RSS baseline [default: --requests]")
    a = ap.parse_args()
    with open(a.image, "rb") as f:
        image_uri = "data:image/png;base64," + base64.b64encode(f.read()).decode()
    client = openai.OpenAI(base_url=a.url + "/v1", api_key=a.key, max_retries=0, timeout=300)

    def run(n_clients, n_requests, latencies, errors, seed):
        def worker(w):
            rng = random.Random(seed * 1000 + w)
            for i in range(n_requests):
                t = time.perf_counter()
                try:
                    err = one(client, w + i, image_uri, rng, a.max_tokens)
                except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                    err = "%s: %s" % (type(e).__name__, e)
                latencies.append(time.perf_counter() - t)
                if err:
                    errors.append(err)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(n_clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    warm_lat, warm_err = [], []
    # the same load first: resident memory grows over the first couple of hundred requests
    # (KV caches, llama.cpp's compute buffers for each batch shape, malloc arenas) and then
    # stays flat; the drift is measured from there, so it shows leaks, not warm-up
    run(a.clients, a.requests if a.warmup is None else a.warmup, warm_lat, warm_err, seed=7)
    rss_before = rss_mib(a.pid) if a.pid else None
    latencies, errors = [], []
    t0 = time.perf_counter()
    run(a.clients, a.requests, latencies, errors, seed=1)
    seconds = time.perf_counter() - t0
    rss_after = rss_mib(a.pid) if a.pid else None
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    out = {
        "clients": a.clients,
        "warmup_requests": len(warm_lat),
        "requests": len(latencies),
        "failed": len(errors) + len(warm_err),
        "errors": (warm_err + errors)[:5],
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(latencies) / seconds, 2),
        "p50_ms": round(q[49] * 1e3, 1),
        "p95_ms": round(q[94] * 1e3, 1),
    }
    if a.pid:
        out.update(rss_before_mib=round(rss_before, 1), rss_after_mib=round(rss_after, 1), rss_drift=round(rss_after / rss_before - 1, 4))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
