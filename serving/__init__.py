"""The scoring service for the CRM (BentoML), its stores and the rep's score card.

service: the BentoML service (`bentoml serve serving.service:LeadScoreService`); scoring: request
rows <-> LeadScorer; schemas: request/response bodies; openapi: the API's document at /docs.json;
security: API key and size limits; store: score log and feedback (SQLAlchemy); scorecard: the HTML
score card; bento: packaging the served model into a self-contained bento; local_server and bench:
running and measuring it.
"""
