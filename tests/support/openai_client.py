"""Drives the daemon's OpenAI-compatible endpoint with the official `openai` package.

Usage: openai_client.py BASE_URL MODEL. Prints one JSON object with what the client saw, for
the Rust test to assert on: a non-streaming call (with history) and a streaming call.
"""

import json
import sys

from openai import OpenAI


def main() -> None:
    base_url, model = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=60)

    models = [entry.id for entry in client.models.list().data]

    completion = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": "What is my name?"},
        ],
    )

    deltas = []
    finish_reasons = []
    roles = []
    usage = None
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                deltas.append(choice.delta.content)
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)

    error = None
    try:
        client.chat.completions.create(model="no-such-agent", messages=[{"role": "user", "content": "hi"}])
    except Exception as exc:  # openai.NotFoundError; report what the SDK parsed
        error = {"class": type(exc).__name__, "status": getattr(exc, "status_code", None),
                 "code": getattr(exc, "code", None)}

    print(json.dumps({
        "models": models,
        "content": completion.choices[0].message.content,
        "role": completion.choices[0].message.role,
        "finish_reason": completion.choices[0].finish_reason,
        "usage": completion.usage.model_dump() if completion.usage else None,
        "object": completion.object,
        "deltas": deltas,
        "roles": roles,
        "finish_reasons": finish_reasons,
        "stream_usage": usage,
        "error": error,
    }))


if __name__ == "__main__":
    main()
