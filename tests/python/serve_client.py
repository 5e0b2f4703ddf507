"""Drives a running `sail serve` with the official `openai` client (started by cli/tests/serve.rs).

Environment: SAIL_URL (http://127.0.0.1:PORT), SAIL_KEY (the server's --api-key), SAIL_BIN and
SAIL_MODEL (to run `sail run` for the greedy comparisons), SAIL_IMAGE (a PNG inside
SAIL_FILES, the server's --allow-local-files), SAIL_OUTSIDE (a PNG outside it), SAIL_MAX_BODY
(the server's body limit in bytes).
"""

import base64
import json
import os
import re
import subprocess
import time
import unittest
import urllib.request

import openai

URL = os.environ["SAIL_URL"]
KEY = os.environ["SAIL_KEY"]
IMAGE = os.environ["SAIL_IMAGE"]


def client(key=KEY):
    return openai.OpenAI(base_url=URL + "/v1", api_key=key, max_retries=0, timeout=120)


def data_uri(path):
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode()


def image_part(url):
    return {"type": "image_url", "image_url": {"url": url}}


def get(path, key=KEY):
    req = urllib.request.Request(URL + path, headers={"Authorization": "Bearer " + key} if key else {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read().decode()


def metrics():
    _, text = get("/metrics")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def sail_run(*args):
    cmd = [os.environ["SAIL_BIN"], "run", "-m", os.environ["SAIL_MODEL"], "--temp", "0", "--json", "-t", "2", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def greedy(messages, n, **extra):
    body = {"ignore_eos": True, "return_token_ids": True, **extra.pop("extra_body", {})}
    return client().chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=n, extra_body=body, **extra)


class ServeTest(unittest.TestCase):
    def test_health_models_and_metrics(self):
        self.assertEqual(get("/health", key=None), (200, '{"status":"ready"}'))
        ids = [m.id for m in client().models.list()]
        self.assertEqual(len(ids), 1)
        m = metrics()
        for k in ["sail_model_ready", "sail_queue_length", "sail_vision_milliseconds_total", "sail_completion_tokens_total"]:
            self.assertIn(k, m)
        self.assertEqual(m["sail_model_ready"], 1)

    def test_text_chat(self):
        r = client().chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hello!"}], max_tokens=8, seed=3)
        c = r.choices[0]
        self.assertEqual(c.message.role, "assistant")
        self.assertIsInstance(c.message.content, str)
        self.assertIn(c.finish_reason, ("stop", "length"))
        self.assertGreater(r.usage.prompt_tokens, 5)
        self.assertLessEqual(r.usage.completion_tokens, 8)
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)
        self.assertTrue(r.id.startswith("chatcmpl-"))

    def test_image_chat_base64_and_local_file(self):
        text = greedy([{"role": "user", "content": "Describe it."}], 4)
        img = greedy([{"role": "user", "content": [image_part(data_uri(IMAGE)), {"type": "text", "text": "Describe it."}]}], 4)
        # 7 tiles x 16 tokens for this 260x180 picture, plus <img></img> and the newline
        self.assertGreaterEqual(img.usage.prompt_tokens - text.usage.prompt_tokens, 7 * 16)
        # the same picture as a file inside --allow-local-files gives the same answer, and its
        # bytes are the same content: served by the image embedding cache, not encoded again
        before = metrics()
        f = greedy([{"role": "user", "content": [image_part("file://" + IMAGE), {"type": "text", "text": "Describe it."}]}], 4)
        after = metrics()
        self.assertEqual(f.choices[0].token_ids, img.choices[0].token_ids)
        self.assertEqual(f.prompt_token_ids, img.prompt_token_ids)
        hits = 'sail_image_cache_hits_total{where="memory"}'
        self.assertEqual(after[hits] - before[hits], 1)
        self.assertEqual(after["sail_image_cache_misses_total"], before["sail_image_cache_misses_total"])

    def test_greedy_matches_sail_run(self):
        q = "What is in the picture?"
        want = sail_run("--image", IMAGE, "-p", q, "-n", "12", "--ignore-eos")
        got = greedy([{"role": "user", "content": [image_part(data_uri(IMAGE)), {"type": "text", "text": q}]}], 12)
        self.assertEqual(got.prompt_token_ids, want["prompt_token_ids"])
        self.assertEqual(got.choices[0].token_ids, want["tokens"])
        self.assertEqual(got.choices[0].message.content, want["text"])
        self.assertEqual(got.usage.prompt_tokens, want["prompt_tokens"])
        # text only, with a system prompt
        want = sail_run("--system", "You answer briefly.", "-p", "Name a colour.", "-n", "10", "--ignore-eos")
        got = greedy([{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Name a colour."}], 10)
        self.assertEqual(got.prompt_token_ids, want["prompt_token_ids"])
        self.assertEqual(got.choices[0].token_ids, want["tokens"])
        self.assertEqual(got.choices[0].message.content, want["text"])

    def test_thinking_matches_sail_run_think(self):
        want = sail_run("--think", "-p", "Why is the sky blue?", "-n", "12", "--ignore-eos")
        got = greedy([{"role": "user", "content": "Why is the sky blue?"}], 12, extra_body={"think": True})
        self.assertEqual(got.prompt_token_ids, want["prompt_token_ids"])
        self.assertEqual(got.choices[0].token_ids, want["tokens"])
        msg = got.choices[0].message
        self.assertEqual(msg.content, want["answer"])
        self.assertEqual(getattr(msg, "reasoning_content", None), want["reasoning"])

    def test_streaming(self):
        msgs = [{"role": "user", "content": "Count to five."}]
        whole = greedy(msgs, 12)
        chunks = list(greedy(msgs, 12, stream=True, stream_options={"include_usage": True}))
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, whole.choices[0].message.content)
        finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        self.assertEqual(finals, [whole.choices[0].finish_reason])
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.completion_tokens, 12)
        self.assertEqual(len({c.id for c in chunks}), 1)
        # the raw stream is OpenAI's SSE: data: lines, ending with data: [DONE]
        req = urllib.request.Request(
            URL + "/v1/chat/completions",
            data=json.dumps({"messages": msgs, "max_tokens": 3, "stream": True}).encode(),
            headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            self.assertTrue(r.headers["Content-Type"].startswith("text/event-stream"))
            lines = [l for l in r.read().decode().split("\n") if l and not l.startswith(":")]
        self.assertTrue(all(l.startswith("data: ") for l in lines), lines)
        self.assertEqual(lines[-1], "data: [DONE]")

    def test_multi_turn_reuses_the_cache(self):
        first = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Pick a number."}]
        a = greedy(first, 6)
        history = first + [{"role": "assistant", "content": a.choices[0].message.content}, {"role": "user", "content": "And another?"}]
        b = greedy(history, 6)
        self.assertGreater(b.usage.prompt_tokens, a.usage.prompt_tokens + 6)
        # the first exchange is still in the session's KV cache: not computed again
        self.assertGreaterEqual(b.usage.prompt_tokens_details.cached_tokens, a.usage.prompt_tokens)
        self.assertEqual(b.prompt_token_ids[: a.usage.prompt_tokens], a.prompt_token_ids)

    def test_stop_string(self):
        msgs = [{"role": "user", "content": "Tell me a story."}]
        full = greedy(msgs, 16).choices[0].message.content
        # a stop string from the middle of the greedy answer, first occurring there
        k = next(i for i in range(4, len(full) - 3) if full.find(full[i : i + 3]) == i and full[i : i + 3].strip())
        stop = full[k : k + 3]
        r = greedy(msgs, 16, stop=[stop, "\u0000never"])
        self.assertEqual(r.choices[0].message.content, full[:k])
        self.assertEqual(r.choices[0].finish_reason, "stop")
        streamed = "".join(c.choices[0].delta.content or "" for c in greedy(msgs, 16, stop=stop, stream=True) if c.choices)
        self.assertEqual(streamed, full[:k])
        self.assertNotIn(stop, streamed)

    def test_bad_images_are_400(self):
        bad = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nthis is not a png").decode()
        cases = [
            (bad, "messages[0].content[0]"),
            ("data:image/png;base64,@@@", "not valid base64"),
            ("https://example.com/cat.png", "not fetched"),
            ("file://" + os.environ["SAIL_OUTSIDE"], "outside the folder"),
            ("file:///nonexistent/x.png", "x.png"),
        ]
        for url, needle in cases:
            with self.assertRaises(openai.BadRequestError, msg=url) as e:
                client().chat.completions.create(model="tiny", messages=[{"role": "user", "content": [image_part(url), {"type": "text", "text": "hi"}]}], max_tokens=2)
            self.assertIn(needle, e.exception.body["message"], url)
            self.assertEqual(e.exception.body["type"], "invalid_request_error")

    def test_bad_parameters_are_400(self):
        msgs = [{"role": "user", "content": "hi"}]
        for kw, param in [({"temperature": -1}, "temperature"), ({"top_p": 1.5}, "top_p"), ({"max_tokens": 100000}, "max_tokens"), ({"n": 3}, "n")]:
            with self.assertRaises(openai.BadRequestError, msg=str(kw)) as e:
                client().chat.completions.create(model="tiny", messages=msgs, **kw)
            self.assertEqual(e.exception.body["param"], param)
        with self.assertRaises(openai.BadRequestError) as e:
            client().chat.completions.create(model="tiny", messages=msgs, max_tokens=1000)
        self.assertEqual(e.exception.body["code"], "context_length_exceeded")
        with self.assertRaises(openai.BadRequestError):
            client().chat.completions.create(model="tiny", messages=[{"role": "assistant", "content": "no question"}])

    def test_default_max_tokens_fits_the_context(self):
        # without max_tokens the server's --max-tokens (2000) would not fit the context (1024):
        # it generates what fits instead of refusing
        stream = client().chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Go on."}], stream=True, extra_body={"ignore_eos": True})
        first = next(iter(stream))
        self.assertEqual(first.choices[0].delta.role, "assistant")
        stream.close()

    def test_oversize_body_is_413(self):
        big = "x" * (int(os.environ["SAIL_MAX_BODY"]) + 1000)
        with self.assertRaises(openai.APIStatusError) as e:
            client().chat.completions.create(model="tiny", messages=[{"role": "user", "content": big}], max_tokens=2)
        self.assertEqual(e.exception.status_code, 413)
        self.assertEqual(e.exception.body["code"], "request_too_large")

    def test_wrong_or_missing_key_is_401(self):
        with self.assertRaises(openai.AuthenticationError) as e:
            client("not-the-key").chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        self.assertEqual(e.exception.status_code, 401)
        with self.assertRaises(openai.AuthenticationError):
            client("not-the-key").models.list()
        with self.assertRaises(urllib.error.HTTPError) as e:
            get("/metrics", key=None)
        self.assertEqual(e.exception.code, 401)
        self.assertEqual(json.loads(e.exception.read())["error"]["type"], "authentication_error")

    def test_client_disconnect_mid_stream_stops_generation(self):
        before = metrics()
        stream = greedy([{"role": "user", "content": "Write a long essay."}], 900, stream=True)
        got = 0
        for chunk in stream:
            got += 1
            if got == 4:
                break
        stream.close()  # closes the connection mid-stream
        # the server notices at its next token and stops; 900 tokens would take seconds
        for _ in range(100):
            m = metrics()
            if m["sail_requests_cancelled_total"] > before["sail_requests_cancelled_total"] and m["sail_requests_running"] == 0:
                break
            time.sleep(0.1)
        self.assertEqual(m["sail_requests_cancelled_total"], before["sail_requests_cancelled_total"] + 1)
        generated = m["sail_completion_tokens_total"] - before["sail_completion_tokens_total"]
        self.assertLess(generated, 450, "generation went on after the client left")
        self.assertEqual(m["sail_requests_running"], 0)
        # and the server keeps serving
        r = client().chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Still there?"}], max_tokens=3)
        self.assertEqual(r.usage.completion_tokens, 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
