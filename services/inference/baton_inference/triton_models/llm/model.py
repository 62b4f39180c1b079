"""llm: a transformers causal LM streaming token pieces through Triton's decoupled mode.

Each request gets its pieces as they come (TextIteratorStreamer); the last
response carries the token counts and the finish reason.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from baton_model import BadInput, triton_model


class Runner:
    last_usage: dict[str, Any] = {}

    def load(self, settings: Any) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.settings = settings
        self.tokenizer = AutoTokenizer.from_pretrained(settings.weights)
        self.model = AutoModelForCausalLM.from_pretrained(settings.weights).to(settings.device).eval()

    def stream(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        from transformers import TextIteratorStreamer

        messages = params.get("messages")
        if not messages or not all(isinstance(m, dict) and "role" in m and "content" in m for m in messages):
            raise BadInput("messages must be a list of {role, content}")
        max_tokens = int(params.get("max_tokens", 256))
        temperature = float(params.get("temperature", 0.7))
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)["input_ids"].to(self.settings.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        generate = {
            "input_ids": ids,
            "attention_mask": self.torch.ones_like(ids),
            "max_new_tokens": max_tokens,
            "streamer": streamer,
            "do_sample": temperature > 0,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if temperature > 0:
            generate |= {"temperature": temperature, "top_p": float(params.get("top_p", 1.0))}
            top_k = int(params.get("top_k", -1))
            if top_k > 0:
                generate["top_k"] = top_k
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                with self.torch.inference_mode():
                    result["ids"] = self.model.generate(**generate)
            except Exception as exc:  # noqa: BLE001 - raised again in the caller's thread
                result["error"] = exc
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        for piece in streamer:
            if piece:
                yield {"text": piece}
        thread.join()
        if "error" in result:
            raise result["error"]
        completion = int(result["ids"].shape[-1] - ids.shape[-1])
        self.last_usage = {
            "prompt_tokens": int(ids.shape[-1]),
            "completion_tokens": completion,
            "finish_reason": "length" if completion >= max_tokens else "stop",
        }


TritonPythonModel = triton_model(Runner)
