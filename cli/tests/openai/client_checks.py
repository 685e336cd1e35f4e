"""Checks of `crucible serve-model` with the real `openai` client (run by cli/tests/openai_server.rs).

Usage: client_checks.py BASE_URL API_KEY MODEL. Exits non-zero, naming the check, on the first failure.
"""
import concurrent.futures
import sys

import httpx
import openai

base, key, model = sys.argv[1:4]
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=300)
server = base.removesuffix("/v1")


def check(name, ok, detail=""):
    if not ok:
        sys.exit(f"FAILED {name}: {detail}")
    print("ok", name)


ids = [m.id for m in client.models.list()]
check("the served model is listed", ids == [model], ids)

# --- chat: plain, streamed with and without usage ---------------------------------------------
messages = [{"role": "user", "content": "What is 12 + 7?"}]
chat = client.chat.completions.create(
    model=model, messages=messages, temperature=0, max_completion_tokens=48
)
text = chat.choices[0].message.content
check("chat answers", isinstance(text, str) and text != "", chat)
u = chat.usage
check("chat usage adds up", u.completion_tokens > 0 and u.total_tokens == u.prompt_tokens + u.completion_tokens, u)

parts, usage, finish, roles, usage_chunks = [], None, None, [], 0
for chunk in client.chat.completions.create(
    model=model, messages=messages, temperature=0, max_completion_tokens=48,
    stream=True, stream_options={"include_usage": True},
):
    if chunk.usage is not None:
        usage, usage_chunks = chunk.usage, usage_chunks + 1
        check("the usage chunk has no choices", chunk.choices == [], chunk)
    for c in chunk.choices:
        roles += [c.delta.role] if c.delta.role else []
        parts += [c.delta.content] if c.delta.content else []
        finish = c.finish_reason or finish
check("a streamed chat equals the plain one", "".join(parts) == text, ("".join(parts), text))
check("the stream opens with the assistant role", roles == ["assistant"], roles)
check("the stream ends as the plain reply", finish == chat.choices[0].finish_reason, finish)
check("one usage chunk with the plain reply's counts", usage_chunks == 1 and usage.completion_tokens == u.completion_tokens, usage)
plain_stream = list(client.chat.completions.create(
    model=model, messages=messages, temperature=0, max_completion_tokens=8, stream=True))
check("no usage without include_usage", all(c.usage is None for c in plain_stream))

# --- completions: n > 1 with a seed, streamed, stop strings ------------------------------------
prompt = "Q: 3 + 4 = ?\nA:"
ask = dict(model=model, prompt=prompt, max_tokens=24, temperature=1.0, n=4, seed=7)
first, again = client.completions.create(**ask), client.completions.create(**ask)
check("n choices, indexed", sorted(c.index for c in first.choices) == [0, 1, 2, 3], first)
texts = [c.text for c in sorted(first.choices, key=lambda c: c.index)]
check("a seed reproduces every choice", texts == [c.text for c in sorted(again.choices, key=lambda c: c.index)])
check("the choices of one request differ", len(set(texts)) > 1, texts)
streamed = {i: "" for i in range(4)}
for chunk in client.completions.create(**ask, stream=True):
    for c in chunk.choices:
        streamed[c.index] += c.text
check("streamed choices equal the plain ones", [streamed[i] for i in range(4)] == texts, streamed)
usages = [c.usage for c in client.completions.create(**ask, stream=True, stream_options={"include_usage": True})
          if c.usage is not None]
check("a completions stream ends with one usage chunk", len(usages) == 1
      and usages[0].completion_tokens == first.usage.completion_tokens, usages)

greedy = dict(model=model, prompt=prompt, temperature=0)
full = client.completions.create(**greedy, max_tokens=64).choices[0].text
stop = next(full[i:i + 2] for i in range(len(full) // 3, len(full) - 2) if full[i:i + 2].strip())
cut = client.completions.create(**greedy, max_tokens=64, stop=[stop]).choices[0]
check("a stop string ends the text right before it", cut.text == full[: full.find(stop)] and cut.finish_reason == "stop", (stop, cut, full))

# --- log-probabilities: generated, echoed prompt, chat ----------------------------------------
lp = client.completions.create(**greedy, max_tokens=8, logprobs=3)
L = lp.choices[0].logprobs
check("one log-probability per generated token", len(L.tokens) == len(L.token_logprobs) == lp.usage.completion_tokens, L)
check("three alternatives (plus the token)", all(3 <= len(t) <= 4 for t in L.top_logprobs), L.top_logprobs)
check("greedy tokens are their position's best", all(abs(p - max(t.values())) < 1e-6 for p, t in zip(L.token_logprobs, L.top_logprobs)), L)

echo = client.completions.create(**greedy, max_tokens=1, logprobs=1, echo=True)
E, n_prompt = echo.choices[0].logprobs, echo.usage.prompt_tokens
check("echo returns the prompt first", echo.choices[0].text.startswith(prompt), echo.choices[0].text)
check("echo scores prompt length + 1 tokens, the first null",
      len(E.token_logprobs) == n_prompt + 1 and E.token_logprobs[0] is None and E.top_logprobs[0] is None
      and all(p is not None and p <= 0 for p in E.token_logprobs[1:]), E)

tokenized = [httpx.post(f"{server}/tokenize", json={"prompt": p}, headers={"Authorization": f"Bearer {key}"}).json()["tokens"]
             for p in (prompt, "Q: 5 + 5 = ?\nA:")]
batch = client.completions.create(model=model, prompt=tokenized, max_tokens=6, temperature=0)
check("a batch of token-id prompts gets one choice each", len(batch.choices) == 2, batch)
alone = client.completions.create(model=model, prompt="Q: 5 + 5 = ?\nA:", max_tokens=6, temperature=0)
check("token ids and text prompts agree", sorted(batch.choices, key=lambda c: c.index)[1].text == alone.choices[0].text)

c = client.chat.completions.create(model=model, messages=messages, temperature=0, max_completion_tokens=6,
                                   logprobs=True, top_logprobs=2)
content = c.choices[0].logprobs.content
check("chat log-probabilities per token", len(content) == c.usage.completion_tokens and all(len(x.top_logprobs) == 2 for x in content), content)
check("chat greedy tokens are the best alternative", all(x.token == x.top_logprobs[0].token for x in content), content)

# --- a seeded request alone and among 64 -------------------------------------------------------
probe = dict(model=model, prompt=prompt, max_tokens=32, temperature=1.0, seed=42)
by_itself = client.completions.create(**probe).choices[0].text
with concurrent.futures.ThreadPoolExecutor(64) as pool:
    crowd = [pool.submit(client.completions.create, model=model, prompt=f"Q: {i} + {i + 1} = ?\nA:",
                         max_tokens=16 + i % 17, temperature=1.0, seed=i) for i in range(63)]
    among = pool.submit(client.completions.create, **probe)
    in_crowd = among.result().choices[0].text
    for f in crowd:
        f.result()
check("a seeded request is the same alone and among 64", in_crowd == by_itself, (in_crowd, by_itself))

# --- errors as the client sees them -----------------------------------------------------------
for kwargs, param in [
    (dict(model="no-such-model", messages=messages), "model"),
    (dict(model=model, messages=messages, n=10**6), "n"),
    (dict(model=model, messages=messages, max_completion_tokens=10**6), "max_completion_tokens"),
]:
    try:
        client.chat.completions.create(**kwargs)
        check(f"refused: {param}", False, "accepted")
    except openai.BadRequestError as e:
        check(f"a 400 naming {param}", e.status_code == 400 and e.param == param, e.body)
try:
    openai.OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()
    check("a wrong key is refused", False, "accepted")
except openai.AuthenticationError as e:
    check("a wrong key is a 401", e.status_code == 401)
print("all checks passed")
