"""The service's OpenAPI description, served at /openapi.json (schemathesis and client generators read it)."""

from __future__ import annotations

ERROR = {"description": "one line saying what was wrong",
         "content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}}
PREDICTION = {"type": "object", "properties": {
    "model": {"type": "string"}, "runtime": {"type": "string"}, "precision": {"type": "string"},
    "polarity": {"type": "string"}, "card": {"type": "object"},
    "predictions": {"type": "array", "items": {"type": "object", "properties": {
        "file": {"type": "string"}, "inverted": {"type": "boolean"},
        "top": {"type": "array", "items": {"type": "object", "properties": {
            "class": {"type": "string"}, "probability": {"type": "number"}}}}}}}}}


def schema(model: str) -> dict:
    image = {"type": "string", "format": "binary"}
    return {"openapi": "3.1.0", "info": {"title": f"zoo serve: {model}", "version": "1"}, "paths": {
        "/v1/predict": {"post": {
            "summary": "Classify one image (the raw body) or several (multipart/form-data, one file each)",
            "parameters": [{"name": "top_k", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
            "requestBody": {"required": True, "content": {
                "image/*": {"schema": image}, "application/octet-stream": {"schema": image},
                "multipart/form-data": {"schema": {"type": "object", "additionalProperties": image}}}},
            "responses": {"200": {"description": "top-k classes per image",
                                  "content": {"application/json": {"schema": PREDICTION}}},
                          "400": ERROR, "401": ERROR, "413": ERROR, "500": ERROR,
                          "503": {**ERROR, "description": "the queue is full: retry after Retry-After seconds"},
                          "504": ERROR}}},
        "/v1/model": {"get": {"summary": "Classes, input, card, runtime and limits",
                              "responses": {"200": {"description": "the model"}, "401": ERROR}}},
        "/healthz": {"get": {"summary": "The process answers", "responses": {"200": {"description": "ok"}}}},
        "/readyz": {"get": {"summary": "The model is loaded and warmed",
                            "responses": {"200": {"description": "ready"}, "503": {"description": "not yet"}}}},
        "/metrics": {"get": {"summary": "Prometheus counters", "responses": {"200": {"description": "text"}}}}}}
