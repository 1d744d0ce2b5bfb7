"""API tokens (beyond the contract): admin-only create (secret shown once), list, get, revoke."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response

from functions.api.app import app, body, json_response, no_content, query_params
from shared.bootstrap import tokens


@app.post("/tokens")
def create_token() -> Response:
    token, raw = tokens().create(body())
    return json_response(201, {**token.to_api(), "token": raw})


@app.get("/tokens")
def list_tokens() -> Response:
    return json_response(200, tokens().list(query_params()))


@app.get("/tokens/<token_id>")
def get_token(token_id: str) -> Response:
    return json_response(200, tokens().get(token_id).to_api())


@app.delete("/tokens/<token_id>")
def revoke_token(token_id: str) -> Response:
    tokens().revoke(token_id)
    return no_content()
