"""A real LiteLLM proxy in front of the gateway's ``/litellm`` endpoints (opt-in).

Set ``DISTILLWATCH_LITELLM`` to the ``litellm`` executable of an isolated environment
(``python -m venv v && v/bin/pip install 'litellm[proxy]'``; checked with 1.106.2); without it
the test is skipped, as the gateway itself never depends on ``litellm``. The proxy uses its
master key (no database), a Generic Guardrail API guardrail (``pre_call``) and a
``generic_api`` callback, both pointed at the gateway.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.gateway.conftest import GatewayFactory, Upstream
from tests.gateway.fake_upstream import free_port

LITELLM = os.environ.get("DISTILLWATCH_LITELLM")
TOKEN = "litellm-shared-secret-0001"
MASTER = "sk-litellm-master-0001"
BLOCK_AFTER_3 = """\
name: block-after-3
version: 1
thresholds: {monitor: 0.0, throttle: 0.0, protect: 0.0, block: 0.0}
min_exchanges: 3
"""


def litellm_config(upstream: str, gateway: str) -> str:
    return f"""
model_list:
  - model_name: fake-1
    litellm_params: {{model: openai/fake-1, api_base: "{upstream}", api_key: dummy}}
general_settings:
  master_key: {MASTER}
guardrails:
  - guardrail_name: distillwatch
    litellm_params:
      guardrail: generic_guardrail_api
      mode: pre_call
      api_base: {gateway}/litellm
      api_key: {TOKEN}
      default_on: true
litellm_settings:
  callbacks: ["distillwatch_logs"]
callback_settings:
  distillwatch_logs:
    callback_type: generic_api
    endpoint: {gateway}/litellm/logs
    headers: {{Authorization: "Bearer {TOKEN}"}}
    flush_interval: 1
"""


def chat(port: int, i: int) -> tuple[int, str]:
    body = {"model": "fake-1", "messages": [{"role": "user", "content": f"hello {i}"}]}
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.mark.skipif(not LITELLM, reason="DISTILLWATCH_LITELLM (a litellm executable) not set")
def test_litellm_proxy_is_stopped_by_the_gateway(
    start_gateway: GatewayFactory, upstream: Upstream, tmp_path: Path
) -> None:
    assert LITELLM is not None
    policy = tmp_path / "policy.yaml"
    policy.write_text(BLOCK_AFTER_3, encoding="utf-8")
    gw = start_gateway(
        engine={"policy": str(policy)},
        litellm={"token": TOKEN, "account_from": ["key", "user_id"]},
    )
    config = tmp_path / "litellm.yaml"
    config.write_text(litellm_config(upstream.url, gw.url), encoding="utf-8")
    port = free_port()
    with (tmp_path / "litellm.out").open("wb") as out:
        proc = subprocess.Popen(
            [LITELLM, "--config", str(config), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "litellm not up"
                time.sleep(0.5)
        answers = []
        for i in range(15):
            answers.append(chat(port, i))
            if answers[-1][0] != 200:
                break
            time.sleep(1.0)  # the log webhook flushes every second
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    statuses = [s for s, _ in answers]
    assert statuses[:3] == [200, 200, 200]  # the policy allows 3 exchanges
    assert statuses[-1] == 400, statuses  # LiteLLM answers a guardrail block with 400
    assert "suspended" in answers[-1][1] and "quote reference" in answers[-1][1]
    logged = [e for e in gw.exchanges() if e.status == 200]
    assert len(logged) >= 3
    assert {e.account_id for e in logged} == {"default_user_id"}  # the master key's user id
    assert all(e.endpoint == "/v1/chat/completions" and e.prompt_tokens for e in logged)
