"""Text templates for the synthetic traffic generator: system prompts and user turns per workflow.

Everything here is built from small hand-written banks with a seeded ``np.random.Generator``, so the same seed
gives the same text. The banks mix English prose, code and non-English text (German, Spanish, French, Japanese,
Chinese) because tokenizer drift differs by content class and script.
"""

from __future__ import annotations

import numpy as np

CONTENT_CLASSES = ("english", "code", "multilingual")

_EN_SENTENCES = (
    "The customer reports that the invoice total does not match the order confirmation.",
    "Please escalate any message that mentions a data breach or a legal threat.",
    "Our refund policy allows returns within thirty days of delivery for unused items.",
    "If the user asks for a human agent, route the conversation to the live queue.",
    "The deployment failed because the container image could not be pulled from the registry.",
    "Summaries must list the customer's problem, the steps already taken and the open question.",
    "Never reveal internal ticket numbers, employee names or pricing exceptions to the customer.",
    "The search index is rebuilt every night at two o'clock, so new articles appear the next morning.",
    "When the intent is unclear, choose the label other and explain the ambiguity in one sentence.",
    "Shipping to Canada and Mexico takes five to eight business days with the standard carrier.",
    "The mobile app crashes on startup after the latest update on older Android devices.",
    "Billing questions about annual plans go to the finance team, not to technical support.",
    "Cite the knowledge-base article that supports every factual statement in your answer.",
    "Respond in the language the customer used, keeping a friendly and concise tone.",
    "The on-call engineer acknowledged the alert and is investigating elevated error rates.",
    "Password reset emails can take up to ten minutes to arrive during peak hours.",
    "A reviewer should flag missing tests, unchecked error paths and unclear variable names.",
    "Use the tools provided; do not invent tool names or arguments that are not in the schema.",
    "The quarterly report shows a twelve percent increase in active accounts in the EMEA region.",
    "Customers on the enterprise tier have a dedicated success manager and a four-hour SLA.",
)

_MULTI_SENTENCES = {
    "de": (
        "Die Rechnung stimmt nicht mit der Bestellbestätigung überein, bitte prüfen Sie den Betrag.",
        "Ich habe mein Passwort zurückgesetzt, aber die E-Mail ist nie angekommen.",
        "Seit dem letzten Update stürzt die App beim Start auf meinem Tablet ab.",
        "Können Sie mir erklären, wie die Rückerstattung für Jahresabonnements funktioniert?",
        "Die Lieferung nach Österreich dauert jetzt schon mehr als zwei Wochen.",
        "Bitte fassen Sie die wichtigsten Punkte des Vertrags in drei Sätzen zusammen.",
    ),
    "es": (
        "El pedido llegó incompleto y falta uno de los tres artículos que compré.",
        "No puedo iniciar sesión desde ayer aunque la contraseña es correcta.",
        "¿Cuánto tiempo tarda el reembolso en aparecer en mi tarjeta de crédito?",
        "Necesito cambiar la dirección de facturación de mi cuenta empresarial.",
    ),
    "fr": (
        "Je n'arrive pas à télécharger la facture du mois dernier depuis mon espace client.",
        "Le service a été interrompu pendant plus d'une heure ce matin sans aucun message.",
        "Pouvez-vous traduire ce paragraphe en gardant un ton professionnel ?",
    ),
    "ja": (
        "請求書の金額が注文確認メールと一致しません。確認していただけますか。",
        "アプリを最新版に更新してから、起動するとすぐに終了してしまいます。",
        "パスワードを再設定しましたが、確認メールが届きません。",
        "年間プランの返金手続きについて詳しく教えてください。",
        "配送状況を確認したいのですが、追跡番号が見つかりません。",
    ),
    "zh": (
        "发票上的金额与订单确认邮件不一致，请帮我核实一下。",
        "更新应用后，每次打开都会闪退，请问该怎么解决？",
        "我已经重置了密码，但是一直没有收到验证邮件。",
        "请用三句话总结这份合同的主要条款。",
        "企业账户如何修改账单地址和发票抬头？",
    ),
}
_LANGS = ("de", "es", "fr", "ja", "zh")
_LANG_P = np.array([0.35, 0.15, 0.1, 0.2, 0.2])

_IDENTS = ("user", "order", "invoice", "session", "payload", "retry", "token", "account", "batch", "cursor",
           "record", "config", "client", "result", "buffer", "handler", "schema", "window", "limit", "offset")
_CODE_TEMPLATES = (
    "def {a}_{b}({a}, {c}=None):\n    if {c} is None:\n        {c} = load_{c}()\n    return [{b} for {b} in {a} if {b}.{c}]\n",
    "async function {a}{B}({b}) {{\n  const {c} = await fetch(`/api/{a}/${{{b}.id}}`);\n  if (!{c}.ok) throw new Error('{a} failed');\n  return {c}.json();\n}}\n",
    "class {A}{B}:\n    def __init__(self, {b}: int = {n}):\n        self.{b} = {b}\n        self._{c} = {{}}\n\n    def get(self, key):\n        return self._{c}.get(key, self.{b})\n",
    "for (let i = 0; i < {a}.length; i += {n}) {{\n  {b}.push({a}.slice(i, i + {n}));\n}}\n",
    "SELECT {a}_id, COUNT(*) AS n_{b}\nFROM {a}s JOIN {b}s USING ({a}_id)\nWHERE created_at >= NOW() - INTERVAL '{n} days'\nGROUP BY {a}_id ORDER BY n_{b} DESC LIMIT {n};\n",
    "func {A}{B}(ctx context.Context, {b} *{B}) error {{\n\tif {b} == nil {{\n\t\treturn fmt.Errorf(\"nil {b}\")\n\t}}\n\treturn {a}.Save(ctx, {b})\n}}\n",
    "try:\n    {c} = client.{a}({b}, timeout={n})\nexcept TimeoutError:\n    log.warning(\"{a} timed out after %s s\", {n})\n    raise\n",
)


def _code_snippet(rng: np.random.Generator) -> str:
    a, b, c = (_IDENTS[i] for i in rng.choice(len(_IDENTS), 3, replace=False))
    template = _CODE_TEMPLATES[int(rng.integers(len(_CODE_TEMPLATES)))]
    return template.format(a=a, b=b, c=c, A=a.capitalize(), B=b.capitalize(), n=int(rng.integers(2, 120)))


def _en(rng: np.random.Generator, n: int) -> str:
    return " ".join(_EN_SENTENCES[i] for i in rng.integers(len(_EN_SENTENCES), size=n))


def _ml(rng: np.random.Generator, n: int, lang: str | None = None) -> str:
    lang = lang or _LANGS[int(rng.choice(len(_LANGS), p=_LANG_P))]
    bank = _MULTI_SENTENCES[lang]
    sep = "" if lang in ("ja", "zh") else " "
    return sep.join(bank[i] for i in rng.integers(len(bank), size=n))


def system_prompt(name: str, kind: str, n_lines: int, rng: np.random.Generator) -> str:
    """A long, stable system prompt: a header, numbered rules, and (for code kinds) examples or tool schemas."""
    header = f"You are the {name} assistant of Acme Corp. Follow every rule below exactly.\n\n"
    lines = []
    for i in range(n_lines):
        if kind == "code" and i % 3 == 2:
            lines.append(f"Example {i}:\n```\n{_code_snippet(rng)}```")
        elif kind == "tools" and i % 2 == 1:
            a, b = (_IDENTS[j] for j in rng.choice(len(_IDENTS), 2, replace=False))
            lines.append(
                f'{{"name": "{a}_{b}_{i}", "description": "{_en(rng, 1)}", "parameters": {{"type": "object", '
                f'"properties": {{"{a}": {{"type": "string"}}, "{b}": {{"type": "integer", "minimum": 0}}}}, '
                f'"required": ["{a}"]}}}}'
            )
        else:
            lines.append(f"{i + 1}. {_en(rng, 2)}")
    return header + "\n".join(lines)


def user_turn(workflow: str, content: str, rng: np.random.Generator, docs: list[str]) -> str:
    """One user turn for a workflow in a content class (english, code or multilingual)."""
    if workflow == "classify-intent":
        body = _ml(rng, int(rng.integers(1, 4))) if content == "multilingual" else _en(rng, int(rng.integers(1, 5)))
        return f"Classify the intent of this message.\n\nFrom: customer\nMessage: {body}"
    if workflow == "support-summarize":
        parts = []
        for k in range(int(rng.integers(3, 9))):
            text = _ml(rng, int(rng.integers(1, 3))) if content == "multilingual" else _en(rng, int(rng.integers(1, 4)))
            parts.append(f"[{'customer' if k % 2 == 0 else 'agent'}] {text}")
        return "Summarize this ticket thread.\n\n" + "\n".join(parts)
    if workflow == "code-review":
        hunks = "".join(
            "@@ -%d,7 +%d,9 @@\n" % (n, n) + "".join("+" + ln + "\n" for ln in _code_snippet(rng).splitlines())
            for n in rng.integers(1, 900, size=int(rng.integers(2, 7)))
        )
        return f"Review this diff and list concrete problems.\n\n```diff\n{hunks}```"
    if workflow == "rag-chat":
        question = _ml(rng, 1) if content == "multilingual" else _en(rng, 1)
        picked = [docs[int(i)] for i in rng.integers(len(docs), size=int(rng.integers(2, 6)))]
        context = "\n\n".join(f"[doc {k + 1}] {d}" for k, d in enumerate(picked))
        return f"Context:\n{context}\n\nQuestion: {question}"
    if workflow == "agent-session":
        if content == "code":
            return f"Tool result (exit 1):\n```\n{_code_snippet(rng)}```\nTraceback: {_en(rng, 1)}\nNext step?"
        return f"Tool result: {_en(rng, int(rng.integers(2, 6)))}\nNext step?"
    if workflow == "content-gen":
        lang = _LANGS[int(rng.choice(len(_LANGS), p=_LANG_P))]
        body = _ml(rng, int(rng.integers(2, 6)), lang) if content == "multilingual" else _en(rng, int(rng.integers(3, 8)))
        return f"Rewrite this for the newsletter (target language: {lang}).\n\n{body}"
    if workflow == "sql-gen":
        return f"Schema:\n```sql\n{_code_snippet(rng)}```\nQuestion: {_en(rng, 1)} Write the SQL."
    raise ValueError(workflow)  # unreachable: workflows come from the packaged profile


def doc_pool(rng: np.random.Generator, n: int) -> list[str]:
    """Knowledge-base passages shared by rag-chat turns (retrieval returns the same passages repeatedly)."""
    return [
        (_ml(rng, int(rng.integers(3, 7))) if rng.random() < 0.2 else _en(rng, int(rng.integers(4, 10))))
        for _ in range(n)
    ]
