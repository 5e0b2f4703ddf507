"""`sail serve --parallel 1 --queue 0 --timeout 3` under pressure, through the `openai` client
(started by cli/tests/serve.rs): a second request while one generates is refused with 503
(queue_full), the running one is stopped by the timeout (an error event in its stream), and
the server then serves again. Environment: SAIL_URL.
"""

import os
import threading
import time
import unittest
import urllib.request

import openai

URL = os.environ["SAIL_URL"]


def client():
    return openai.OpenAI(base_url=URL + "/v1", api_key="none", max_retries=0, timeout=60)


def metric(name):
    with urllib.request.urlopen(URL + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise KeyError(name)


class LimitsTest(unittest.TestCase):
    def test_queue_full_then_timeout(self):
        started, outcome = threading.Event(), {}

        def long_stream():
            t = time.monotonic()
            try:
                stream = client().chat.completions.create(
                    model="tiny", messages=[{"role": "user", "content": "Go on forever."}], max_tokens=900, stream=True, extra_body={"ignore_eos": True}
                )
                for _ in stream:
                    started.set()
                outcome["error"] = None
            except openai.APIError as e:
                outcome["error"] = e
            outcome["seconds"] = time.monotonic() - t
            started.set()

        th = threading.Thread(target=long_stream)
        th.start()
        self.assertTrue(started.wait(30))
        with self.assertRaises(openai.APIStatusError) as e:
            client().chat.completions.create(model="tiny", messages=[{"role": "user", "content": "me too"}], max_tokens=2)
        self.assertEqual(e.exception.status_code, 503)
        self.assertEqual(e.exception.body["code"], "queue_full")
        th.join(60)
        self.assertIsNotNone(outcome.get("error"), "the stream was not stopped by the timeout")
        self.assertIn("timeout", str(outcome["error"]))
        self.assertLess(outcome["seconds"], 10)
        self.assertEqual(metric("sail_requests_timed_out_total"), 1)
        r = client().chat.completions.create(model="tiny", messages=[{"role": "user", "content": "ok?"}], max_tokens=2, extra_body={"ignore_eos": True})
        self.assertEqual(r.usage.completion_tokens, 2)
        self.assertEqual(metric("sail_queue_length"), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
