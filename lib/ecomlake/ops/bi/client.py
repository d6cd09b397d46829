"""Superset's REST API as the admin user, on a requests.Session: a JWT bearer token, the CSRF
token and the session cookie; list queries in Rison (prison), uploads as multipart."""
from __future__ import annotations

import prison
import requests

from ecomlake.config import Config
from ecomlake.ops.bi import server


class ApiError(RuntimeError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Client:
    def __init__(self, cfg: Config, url: str | None = None, timeout: float = 120):
        self.url = url or server.base_url()
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Referer"] = self.url
        user, pw = server.credentials(cfg)
        login = {"username": user, "password": pw, "provider": "db", "refresh": True}
        try:
            token = self.call("POST", "/api/v1/security/login", login)["access_token"]
        except ApiError as exc:
            if exc.status != 401:
                raise
            server.ensure_admin(cfg)   # the stored password changed (or the user is new)
            token = self.call("POST", "/api/v1/security/login", login)["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["X-CSRFToken"] = \
            self.call("GET", "/api/v1/security/csrf_token/")["result"]

    def call(self, method: str, path: str, body=None, *, params: dict | None = None,
             files: dict | None = None, data: dict | None = None):
        """One API call; the decoded JSON answer ({} when empty). `body` goes as JSON, `files`
        and `data` as multipart/form-data."""
        try:
            r = self.session.request(method, self.url + path, params=params, files=files,
                                     data=data, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ApiError(f"{method} {path}: {exc}") from None
        if not r.ok:
            raise ApiError(f"{method} {path}: HTTP {r.status_code}: {r.text[:2000]}",
                           r.status_code)
        return r.json() if r.content else {}

    def get(self, path: str, **query):
        """GET with Superset's Rison-encoded `q` parameter built from the keyword arguments."""
        return self.call("GET", path, params={"q": prison.dumps(query)} if query else None)

    def list_all(self, resource: str, columns: list[str]) -> list[dict]:
        out, page = [], 0
        while True:
            res = self.get(f"/api/v1/{resource}/", columns=columns, page=page, page_size=100)
            out += res["result"]
            if len(out) >= res["count"] or not res["result"]:
                return out
            page += 1

    def upload(self, path: str, files: dict[str, tuple[str, bytes]], fields: dict[str, str]):
        """POST a multipart form: files {field: (file name, content)} and plain fields."""
        return self.call("POST", path, data=fields,
                         files={k: (name, content, "application/zip")
                                for k, (name, content) in files.items()})
