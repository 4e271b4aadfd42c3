"""Scoring on models/tiny-llama: batched `choices` scoring (shared prefix, log-softmax only where choice tokens are
predicted) equals scoring every prompt+choice sequence alone; batched generation equals one prompt at a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapterci.data.formats import Message
from adapterci.eval.scoring import choice_logprobs, generate
from adapterci.prompting import ALPACA, PromptFormat, completion_start

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", params=["base", "peft"])
def tiny(request, tiny_peft_adapter):
    """The tiny model, bare or with a LoRA adapter (as eval loads a candidate: PeftModel passes the cache on)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from adapterci.modelio import load_tokenizer_from

    base_dir, adapter_dir = tiny_peft_adapter
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir)).eval()
    if request.param == "peft":
        model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
    return model, load_tokenizer_from(str(base_dir))


def prompts(n: int) -> list[str]:
    """Rendered prompts of the example's sentiment eval set, of different lengths (so batches pad)."""
    fmt = PromptFormat(ALPACA)
    rows = [json.loads(line) for line in (REPO / "evalsets" / "sentiment.jsonl").read_text().splitlines()[:n]]
    return [fmt.render([Message("user", row["prompt"])]) for row in rows]


def one_sequence_at_a_time(model, tokenizer, prompt: str, choice: str) -> tuple[float, int]:
    """The plain definition: one forward pass over prompt + choice + eos, full log-softmax, sum over the choice."""
    import torch

    ids = tokenizer(prompt + choice + tokenizer.eos_token)["input_ids"]
    start = completion_start(tokenizer(prompt)["input_ids"], ids)
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    return sum(float(logp[t - 1, ids[t]]) for t in range(start, len(ids))), len(ids) - start


@pytest.mark.parametrize("choices", [["positive", "negative"], ["I can't help with that.", "I can help", "Sure"]])
def test_choice_logprobs_equal_scoring_each_sequence_alone(tiny, choices):
    model, tokenizer = tiny
    items = prompts(7)
    assert len({len(tokenizer(p)["input_ids"]) for p in items}) > 1
    batched = choice_logprobs(model, tokenizer, items, choices, batch_size=3)
    assert_each_sequence_alone_scores(model, tokenizer, items, choices, batched)


def assert_each_sequence_alone_scores(model, tokenizer, items: list[str], choices: list[str], batched) -> None:
    for prompt, scores in zip(items, batched):
        for choice, (total, count) in zip(choices, scores):
            ref_total, ref_count = one_sequence_at_a_time(model, tokenizer, prompt, choice)
            assert count == ref_count
            assert total == pytest.approx(ref_total, abs=1e-4)


def test_generate_batched_gives_the_answers_of_one_by_one(tiny):
    model, tokenizer = tiny
    items = prompts(9)
    assert generate(model, tokenizer, items, max_new_tokens=6, batch_size=4) == \
        generate(model, tokenizer, items, max_new_tokens=6, batch_size=1)


def few_shot_prompts(n: int) -> list[str]:
    """Prompts that share a long few-shot prefix before items of different lengths (as a stratified baseline)."""
    fmt = PromptFormat(ALPACA)
    rows = [json.loads(line) for line in (REPO / "evalsets" / "sentiment.jsonl").read_text().splitlines()[:n + 4]]
    shots = [m for row in rows[n:] for m in (Message("user", row["prompt"]), Message("assistant", row["completion"]))]
    return [fmt.render([*shots, Message("user", row["prompt"])]) for row in rows[:n]]


def test_a_shared_few_shot_prefix_runs_once_and_changes_no_score(tiny):
    model, tokenizer = tiny
    items = few_shot_prompts(5)
    calls = []
    hook = model.register_forward_hook(lambda mod, args, kwargs, out: calls.append(kwargs["input_ids"].shape),
                                       with_kwargs=True)
    try:
        batched = choice_logprobs(model, tokenizer, items, ["positive", "negative"], batch_size=2)
    finally:
        hook.remove()
    prefix = min(len(tokenizer(p)["input_ids"]) for p in items)
    assert calls[0][0] == 1 and calls[0][1] > prefix // 2  # the shared shots, once, one row
    assert all(shape[1] < prefix // 2 for shape in calls[1:])  # every later pass runs only the item's own tokens
    assert_each_sequence_alone_scores(model, tokenizer, items, ["positive", "negative"], batched)


def test_generate_after_a_shared_prefix_answers_as_plain_greedy_decoding(tiny):
    import torch

    model, tokenizer = tiny
    items = few_shot_prompts(5)
    answers = generate(model, tokenizer, items, max_new_tokens=6, batch_size=3)
    for prompt, answer in zip(items, answers):
        ids = torch.tensor([tokenizer(prompt)["input_ids"]])
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        assert answer == tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
