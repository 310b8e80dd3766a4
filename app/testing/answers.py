"""A stand-in for the supervisor at every modal question and file dialog (app.views.ask)."""

from __future__ import annotations

from typing import Any


class Answers:
    """Answers what `app.views.ask` would ask on screen, and records it.

    `confirm` (True) answers every confirmation; `open_path` / `save_path` (None: the
    supervisor cancelled) answer the file dialogs; `questions` holds (title, text) of each
    confirmation and `messages` (title, text, warning) of each message shown.
    """

    def __init__(self) -> None:
        self.confirm = True
        self.questions: list[tuple[str, str]] = []
        self.messages: list[tuple[str, str, bool]] = []
        self.open_path: str | None = None
        self.save_path: str | None = None

    def ask(self, _parent: Any, title: str, text: str, **_kwargs: Any) -> bool:
        self.questions.append((title, text))
        return self.confirm

    def inform(self, _parent: Any, title: str, text: str, warning: bool = False) -> None:
        self.messages.append((title, text, warning))

    def open_file(self, *_args: Any) -> str | None:
        return self.open_path

    def save_file(self, *_args: Any) -> str | None:
        return self.save_path
