"""Request and response models of the HTTP service (pydantic; published as the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_STRICT = ConfigDict(extra="forbid")  # an unknown field is a 422 naming it, not silently ignored

ItemId = str | int  # raw ids; numbers are accepted and read as their decimal text


class RecommendRequest(BaseModel):
    model_config = _STRICT
    user_id: ItemId | None = Field(None, description="a user id; its stored history is used when no history is given")
    history: list[ItemId] | None = Field(None, description="item ids, oldest first")
    session_id: str | None = Field(None, description="used for the A/B assignment when there is no user id")
    k: int | None = Field(None, description="how many items to return (default: the pipeline's k)")
    exclude_seen: bool = Field(True, description="leave the history's items out")
    explain: bool = Field(False, description="add item attributes, the retrieved candidates and attention")


class ScoreRequest(BaseModel):
    model_config = _STRICT
    user_id: ItemId | None = None
    history: list[ItemId] | None = None
    session_id: str | None = None
    candidates: list[ItemId] = Field(..., description="item ids to rank")


class ClickRequest(BaseModel):
    model_config = _STRICT
    item_id: ItemId
    k: int | None = None


class AttentionWeight(BaseModel):
    id: str
    weight: float


class ScoredItem(BaseModel):
    id: str
    score: float | None = None
    retrieval_score: float | None = None
    attributes: dict[str, str | None] | None = None
    attention: list[AttentionWeight] | None = None


class RecommendResponse(BaseModel):
    items: list[ScoredItem]
    model_versions: dict[str, str]
    notes: list[str]
    candidates: list[ScoredItem] | None = None
    timings_ms: dict[str, float] = {}


class ClickResponse(BaseModel):
    session_id: str
    clicks: int
    items: list[ScoredItem]
    model_versions: dict[str, str]
    notes: list[str]


class ReloadRequest(BaseModel):
    model_config = _STRICT
    variants: dict[str, dict[str, str]] | None = Field(
        None, description='variant -> {"retriever": run dir, "ranker": run dir}; omitted = re-read the same runs')


class ErrorResponse(BaseModel):
    error: str
    field: str | None = None
