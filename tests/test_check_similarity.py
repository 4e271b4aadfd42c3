"""The vectorised near-duplicate (MinHash + LSH) and leakage (n-gram) cores on crafted texts."""

from __future__ import annotations

import random

from adapterci.data.checks.leakage import _leaks, _template, _TrainingGrams
from adapterci.data.checks.near_duplicates import _bands, similar_pairs
from adapterci.data.checks.ngrams import chars_of, ngrams, run_hashes, words_of
from adapterci.data.checks.paraphrase import contained

WORDS = ("hotel staff room view breakfast pool quiet noisy clean dirty friendly rude coffee pizza movie plot "
         "battery screen phone charger delivery package price value service waiter menu dessert app update").split()


def sentences(n: int, seed: int = 0, length: int = 30) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(length)) for _ in range(n)]


def test_ngrams_hash_equal_sequences_equally() -> None:
    words = words_of(["The pool was great.", "the POOL was great, really", "x"])
    keys, rows, starts = ngrams(words, 3)
    assert rows.tolist() == [0, 0, 1, 1, 1] and starts.tolist() == [0, 1, 4, 5, 6]
    assert keys[0] == keys[2] and keys[1] == keys[3] and len(set(keys.tolist())) == 3
    whole = run_hashes(words.ids, words.offsets[:1], words.lengths[:1])
    assert ngrams(words.subset(1, 2), 4)[0][0] == whole[0]


def test_similar_pairs_finds_near_duplicates_only() -> None:
    texts = sentences(300)
    base = texts[17].split()
    texts.append(" ".join(base[:-1] + ["dessert" if base[-1] != "dessert" else "menu"]))  # 1 of 30 words changed
    texts.append(texts[42].upper() + "!")  # same words
    texts.append(texts[99])  # exact duplicate: not a near duplicate
    pairs = similar_pairs(texts, 0.8)  # true Jaccard 27/29 = 0.93 and 1.0; the estimate varies by ~0.03
    assert [(i, j) for i, j, _ in pairs] == [(17, 300), (42, 301)]
    assert 0.8 <= pairs[0][2] < 1.0 and pairs[1][2] == 1.0


def test_similar_pairs_ignores_shared_template_text() -> None:
    instruction = "Classify the sentiment of this review as positive or negative, answering with one word only please."
    texts = [f"{instruction} {s}" for s in sentences(200, seed=1, length=8)]
    assert similar_pairs(texts, 0.9) == []
    texts.append(texts[5].replace(",", "").replace(".", "!") + " !")
    assert [(i, j) for i, j, _ in similar_pairs(texts, 0.9)] == [(5, 200)]


def test_similar_pairs_threshold_changes_the_result() -> None:
    texts = sentences(50, seed=2)
    words = texts[3].split()
    texts.append(" ".join(words[:24] + sentences(1, seed=9, length=6)[0].split()))  # ~20 of 30 words shared
    assert similar_pairs(texts, 0.9) == []
    assert [(i, j) for i, j, _ in similar_pairs(texts, 0.4)] == [(3, 50)]


def test_bands_cover_the_permutations() -> None:
    for threshold in (0.5, 0.8, 0.9, 0.95):
        bands, rows = _bands(threshold)
        assert bands * rows <= 64 and bands >= 1
    assert _bands(0.95)[1] >= _bands(0.5)[1]


def _leak_pairs(train: list[str], items: list[str], n: int = 8, share: float = 0.05) -> list[tuple[int, int, int]]:
    words = words_of(train + items)
    item_words = words.subset(len(train), len(train) + len(items))
    return _leaks(_TrainingGrams(words.subset(0, len(train))), item_words, _template(item_words, n, share), n, share)


def test_leaks_ngram_overlap_and_short_items() -> None:
    train = sentences(100, seed=3)
    items = sentences(20, seed=4) + ["where is the zorblax tower"]
    train.append("intro words " + " ".join(items[7].split()[5:15]) + " outro")
    train.append("so, where is the Zorblax tower? nobody knows")
    assert _leak_pairs(train, items) == [(100, 7, 8), (101, 20, 5)]


def test_leaks_skip_template_words_of_eval_items() -> None:
    instruction = "Classify the sentiment of this review as positive or negative."
    items = [f"{instruction} {s}" for s in sentences(40, seed=5, length=12)] + [f"{instruction} quiet pool"]
    train = [f"{instruction} {s}" for s in sentences(100, seed=6, length=12)]
    assert _leak_pairs(train, items) == []
    train.append(f"I think: quiet pool. {instruction}")
    assert _leak_pairs(train, items) == [(100, 40, 2)]


def test_chars_of_ignores_case_punctuation_and_spacing() -> None:
    chars = chars_of(["The POOL, was  great!", "the pool was great", ""])
    keys, rows, _ = ngrams(chars, 4)
    assert chars.lengths.tolist() == [19, 18, 0]  # "the pool was great " and "the pool was great"
    assert set(keys[rows == 0].tolist()) >= set(keys[rows == 1].tolist())


def prose(n: int, seed: int, length: int) -> list[str]:
    """`n` texts of `length` words from a vocabulary of 3,000 made-up words (few shared by chance)."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(3000)]
    rng = random.Random(seed + 1)
    return [" ".join(rng.choice(vocab) for _ in range(length)) for _ in range(n)]


def paraphrases(text: str) -> dict[str, str]:
    words = text.split()
    swapped = words[:4] + [words[5], words[4]] + words[6:]
    return {"insert every 4 words": " ".join(w + (" truly" if i % 4 == 3 else "") for i, w in enumerate(words)),
            "swap two words": " ".join(swapped),
            "case and punctuation": text.upper().replace(" ", ", ") + "!!",
            "replace every 8th word": " ".join("truly" if i % 8 == 7 else w for i, w in enumerate(words))}


def test_contained_finds_paraphrased_items_in_longer_rows() -> None:
    items = prose(60, seed=7, length=12)
    train = prose(300, seed=8, length=20)
    assert contained(train, items, 0.75, 0.05) == []
    for how, text in paraphrases(items[9]).items():
        found = contained([*train, f"Answer this: {text}. Sure, here you go."], items, 0.75, 0.05)
        assert [(r, i) for r, i, _ in found] == [(300, 9)], how
        assert 0.75 <= found[0][2] <= 1
    scattered = " ".join(f"{w} {filler}" for w, filler in zip(items[9].split(), prose(12, seed=10, length=4)))
    assert contained([scattered], items, 0.75, 0.05) == []  # every word, but never near each other


def test_contained_threshold_and_short_items() -> None:
    items = [*prose(30, seed=9, length=12), "where is the zorblax tower"]
    half = " ".join(items[4].split()[:8])  # 8 of 12 words
    assert contained([half], items, 0.75, 0.05) == []
    assert [(r, i) for r, i, _ in contained([half], items, 0.5, 0.05)] == [(0, 4)]
    assert contained(["so where is the zorblax tower today"], items, 0.5, 0.05) == []  # short: the exact check's


def test_fast_renderer_equals_prompt_format() -> None:
    from adapterci.data.checks.token_length import fast_renderer
    from adapterci.data.formats import Message
    from adapterci.prompting import PromptFormat

    fmt = PromptFormat("alpaca")
    render = fast_renderer(fmt)
    cases = [
        (Message("user", "Classify this.\n\nGreat {{ pizza }} {% raw %} \x00 1 \x00"),),
        (Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Bye")),
        (Message("user", ""),),
    ]
    for messages in cases + cases:
        assert render(messages) == fmt.render(messages)
    custom = PromptFormat("{% for m in messages %}{{ m.content | upper }}{% endfor %}")
    assert fast_renderer(custom) == custom.render
