"""System prompts and chat messages shared by training, evaluation and chat."""

from __future__ import annotations

from collections.abc import Sequence

# The prompt of the DeepSeek-R1 paper (Table 1), for users who want the paper's exact template.
R1_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think><answer> answer here </answer>"
)

# r1kit's default asks for the same structure in a third of the tokens. On a CPU every prompt token is paid for in
# each rollout and each backward pass, so the short prompt makes GRPO steps markedly cheaper.
DEFAULT_SYSTEM_PROMPT = (
    "Solve the problem. Think step by step inside <think> </think> tags, "
    "then give only the final answer inside <answer> </answer> tags."
)


# For general, non-reasoning chat (the sft2 stage's general data): a plain answer, no reasoning format.
GENERAL_SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly and clearly."


def chat_prompt(question: str, system_prompt: str, earlier: Sequence[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """The conversational prompt TRL trainers and the chat template expect; `earlier`: (question, reply) turns of a
    conversation before this question. An empty system prompt sends no system message (the template's own default,
    if it has one, applies), as the traces' prompts do.

    >>> chat_prompt("2 + 2?", "")
    [{'role': 'user', 'content': '2 + 2?'}]
    """
    turns = [
        message
        for asked, replied in earlier
        for message in ({"role": "user", "content": asked}, {"role": "assistant", "content": replied})
    ]
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*system, *turns, {"role": "user", "content": question}]


def r1_completion(reasoning: str, answer: str) -> str:
    """A completion in the strict R1 format: one think block, then one answer block."""
    return f"<think>\n{reasoning.strip()}\n</think>\n<answer>{answer.strip()}</answer>"
