"""Prompts for the causal-LM ranker: user history (most recent first), optional few-shot turns."""

from __future__ import annotations

INSTRUCTION = ("Here are items I liked, most recent first:\n{history}\n"
               "Recommend one more item I will like. Answer with its title only.")
COLD = "I have not rated any items yet. Recommend one item I will like. Answer with its title only."


def history_block(texts: list[str]) -> str:
    return "\n".join(f"- {t}" for t in texts)


def messages(history: list[str], shots: list[tuple[list[str], str]],
             attributes: str = "") -> list[dict]:
    """Chat messages: few-shot (history, answer) turns, then the user's own request."""
    msgs: list[dict] = []
    for shot_hist, answer in shots:
        msgs.append({"role": "user", "content": INSTRUCTION.format(
            history=history_block(shot_hist))})
        msgs.append({"role": "assistant", "content": answer})
    body = INSTRUCTION.format(history=history_block(history)) if history else COLD
    if attributes:
        body = f"About me: {attributes}.\n{body}"
    msgs.append({"role": "user", "content": body})
    return msgs


def render(tokenizer, msgs: list[dict]) -> str:
    """The prompt string: the tokenizer's chat template with a generation prompt when it has
    one, else a plain 'User:/Assistant:' transcript ending in 'Assistant:'."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    lines = [f"{'User' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in msgs]
    return "\n".join(lines) + "\nAssistant: "
