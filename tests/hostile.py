"""Hostile completions: what a policy under RL (or an attacker) can emit. Shared by tests and bench/rewards.py."""

HOSTILE = {
    "nested_latex": "<answer>" + "\\frac{" * 400 + "1" + "}{2}" * 400 + "</answer>",
    "huge_power_tower": "<answer>9^{9^{9^{9^{9^{9}}}}}</answer>",
    "huge_python_power": "<answer>10**10**10**10**10</answer>",
    "huge_factorial": "<answer>(10^{10})!</answer>",
    "megabyte_digits": "<answer>" + "1" * 1_000_000 + "</answer>",
    "megabyte_text": "a " * 500_000,
    "control_characters": "<think>\x00\x01\x02\x1b[31m\x7f</think><answer>\x07 4\x08</answer>",
    "thousands_of_tags": "<think>" * 3000 + "</think>" * 3000 + "<answer>1</answer>" * 3000,
    "unbalanced_braces": "<answer>" + "{" * 50_000 + "</answer>",
    "lone_surrogates_and_rtl": "<think>\ud800\udfff\u202e\u200b</think><answer>\u0661\u0662</answer>",
    "deep_parentheses": "<answer>" + "(" * 5000 + "1" + ")" * 5000 + "</answer>",
    "digit_flood_in_thinking": "<think>" + "1" * 1_000_000 + " = 1</think><answer>1</answer>",
    "endless_equation_chain": "<think>" + "9 * 9 = " * 100_000 + "81</think><answer>81</answer>",
    "matrix_bomb": "<answer>\\begin{pmatrix}" + "&".join(["x"] * 3000) + "\\end{pmatrix}^{1000}</answer>",
}
