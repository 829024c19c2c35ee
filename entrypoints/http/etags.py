"""ETag = the aggregate's version; If-Match on updates (412 when stale).

A client reads an account (ETag "7"), changes it with `If-Match: "7"`; if
someone else changed it in between (version 8), the update is refused with 412
and writes nothing. Without If-Match an update applies to the latest version.
"""

from __future__ import annotations

from fastapi import Request, Response

from entrypoints.http.problems import ProblemError


def etag(version: int) -> str:
    return f'"{version}"'


def tag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def check_if_match(request: Request, version: int) -> None:
    """412 when the request's If-Match names another version than `version`."""
    wanted = request.headers.get("if-match")
    if wanted is None:
        return
    tags = {part.strip().removeprefix("W/") for part in wanted.split(",")}
    if "*" in tags or etag(version) in tags:
        return
    raise ProblemError(
        412,
        "precondition-failed",
        "Precondition failed, nothing written",
        f"If-Match {wanted} is not the current version {etag(version)}: it changed since "
        "you read it; read it again",
    )
