"""What a service function answers, without Flask: the route turns it into a streamed Response."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable


@dataclass
class Reply:
    body: Iterable[bytes]           # lazy chunks; everything that can be refused is checked before
    content_type: str
    status: int = 200
    headers: dict = field(default_factory=dict)
