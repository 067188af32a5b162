"""A deterministic LangChain chat model for tests: scripted answers, recorded prompts, no network.

Each call takes the next scripted response:

* a ``dict``: with tools bound (``with_structured_output``) it becomes a tool call with those
  arguments; without tools it is sent as JSON text;
* a ``str``: sent as the message text (no tool call);
* an exception instance: raised (the "error" mode).

Lists are shared with copies, so a copy made to set the prompt's ``temperature`` still records
here; ``temperatures`` says which temperature each call ran with.

``tools=False`` makes the model refuse ``bind_tools`` like models without structured output, so
callers take their text-parsing path. ``delay`` makes every call wait that long (the "slow"
mode); ``release()`` ends the wait early so abandoned worker threads finish at test teardown.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr


class ScriptedChatModel(BaseChatModel):
    """Answers from ``responses`` in order and records every prompt in ``calls``."""

    responses: list[Any] = Field(default_factory=list)
    tools: bool = True
    delay: float = 0.0
    model_name: str = "fake-chat"
    temperature: float | None = None
    # Token counts every answer reports (LangChain's usage_metadata), as providers do; None: none.
    usage: tuple[int, int] | None = None
    temperatures: list[float | None] = Field(default_factory=list)
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    call_kwargs: list[dict[str, Any]] = Field(default_factory=list)

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _release: threading.Event = PrivateAttr(default_factory=threading.Event)

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def release(self) -> None:
        """Ends any ongoing or future ``delay`` wait."""
        self._release.set()

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        if not self.tools:
            raise NotImplementedError("this fake has no tool calling")
        specs = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=specs, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            n = len(self.calls)
            self.calls.append(list(messages))
            self.call_kwargs.append(dict(kwargs))
            self.temperatures.append(self.temperature)
            if not self.responses:
                raise RuntimeError(f"ScriptedChatModel: no response scripted for call {n + 1}")
            response = self.responses.pop(0)
        if self.delay:
            self._release.wait(self.delay)
        if isinstance(response, BaseException):
            raise response
        tools = kwargs.get("tools") or []
        if isinstance(response, dict):
            if tools:
                name = tools[0]["function"]["name"]
                message = AIMessage(
                    content="", tool_calls=[{"name": name, "args": response, "id": f"call_{n}"}]
                )
            else:
                message = AIMessage(content=json.dumps(response))
        else:
            message = AIMessage(content=str(response))
        if self.usage is not None:
            message.usage_metadata = {
                "input_tokens": self.usage[0],
                "output_tokens": self.usage[1],
                "total_tokens": sum(self.usage),
            }
        return ChatResult(generations=[ChatGeneration(message=message)])

    def prompt_text(self, call: int = -1) -> str:
        """All message texts of one recorded call, joined by blank lines."""
        return "\n\n".join(str(m.content) for m in self.calls[call])
