"""Who may see a page of the class web page, from the tokens a request carries.

A token comes as ``?token=`` (the link a person is given: the page keeps it in a cookie and drops it from the
address bar), as ``Authorization: Bearer``, or as one of the two cookies. The trainer's cookie (path ``/``) and
a trainee's (path ``/trainee/<name>``) have different names, so one browser holds both, in two tabs, and each
name carries the class: two classes served from one host on two ports keep theirs apart (cookies ignore ports).
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse

from labkit.classroom.tokens import TRAINER, Holder, identify


def cookie_name(class_name: str, role: str) -> str:
    return f"labkit_{role}_{class_name}"


def cookie_path(holder: Holder) -> str:
    return "/" if holder.role == TRAINER else f"/trainee/{holder.trainee}"


def presented_tokens(request: Request, class_name: str) -> list[str]:
    """The header's token, else the query's, else the cookies'. An explicit token that is wrong is not
    made good by a cookie: the answer is the same 403 whatever else the browser holds."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        return [value.strip()] if scheme.lower() == "bearer" else []
    if "token" in request.query_params:
        return [request.query_params["token"]]
    names = (cookie_name(class_name, "trainee"), cookie_name(class_name, TRAINER))
    return [request.cookies[name] for name in names if request.cookies.get(name)]


def permitted(request: Request, class_name: str, trainee: str | None) -> Holder | None:
    """The holder of a presented token who may see this page: the trainer's pages (``trainee`` None) only
    the trainer; a trainee's page and actions that trainee or the trainer."""
    for token in presented_tokens(request, class_name):
        holder = identify(class_name, token)
        if holder is None:
            continue
        if holder.role == TRAINER if trainee is None else holder.may_act_on(trainee):
            return holder
    return None


def same_origin(request: Request) -> bool:
    """A POST from a page of this server (or from no page: curl); a form on another port of this host is
    same-site, so its POST would carry the cookies: refused here."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def keep_in_cookie(request: Request, class_name: str, holder: Holder) -> RedirectResponse:
    """Redirect to the same page without ``?token=``, the token now in the holder's cookie."""
    query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
    response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
    response.set_cookie(
        cookie_name(class_name, holder.role),
        request.query_params["token"],
        path=cookie_path(holder),
        httponly=True,
        # Lax, not Strict: a trainee opens their link from a bundle file or another site, and a Strict cookie
        # would not come with the redirect that follows (Chromium measured). Lax still keeps it off another
        # site's POSTs, and every GET page only reads.
        samesite="lax",
    )
    return response
