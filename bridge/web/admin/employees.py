"""/admin/employees: employees and their numbers, admin flag, active or not, and their sign-in password."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select

from bridge.accounts import employees, passwords, validation
from bridge.errors import FieldError, InputError
from bridge.web import auth
from bridge.web.admin import forms
from bridge.web.deps import db
from bridge.web.templating import flash, render
from models import Employee

router = forms.admin_router()
NEW = {"active": "1", "delivery": "forward"}
DELIVERY = [("forward", "forward: to their email address"), ("imap", "imap: into their IMAP INBOX"),
            ("none", "none: on the pages only")]


def values_of(e: Employee) -> dict[str, str]:
    return {"number": str(e.number), "name": e.name, "email": e.email, "admin": "1" if e.admin else "",
            "active": "1" if e.active else "", "delivery": e.delivery}


def _list(request: Request, session: Session, values: dict[str, str], errors: dict[str, str],
          status_code: int = 200) -> Response:
    rows = session.exec(select(Employee).order_by(Employee.number)).all()
    return render(request, session, "admin/employees.html",
                  {"title": "Employees", "rows": rows, "values": values, "errors": errors, "delivery": DELIVERY},
                  status_code=status_code)


def _edit(request: Request, session: Session, employee: Employee, values: dict[str, str] | None = None,
          errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    return render(request, session, "admin/employee_edit.html",
                  {"title": f"Employee {employee.number}", "employee": employee,
                   "values": values_of(employee) if values is None else values, "errors": errors or {},
                   "delivery": DELIVERY}, status_code=status_code)


@router.get("/employees")
def employee_list(request: Request, session: Session = Depends(db)) -> Response:
    return _list(request, session, dict(NEW), {})


@router.post("/employees", dependencies=[Depends(auth.check_csrf)])
def employee_add(request: Request, values: dict[str, str] = Depends(forms.form_values),
                 session: Session = Depends(db)) -> Response:
    try:
        number = forms.integer(values, "number", "employee number")
        employees.add_employee(session, number, forms.text(values, "name"), forms.text(values, "email"),
                              admin=forms.checked(values, "admin"), active=forms.checked(values, "active"),
                              delivery=forms.text(values, "delivery") or "forward")
    except InputError as err:
        return _list(request, session, forms.kept(values), forms.refused(session, err), status_code=422)
    session.commit()
    flash(request, f"Employee {number} added; set a password on their page so they can sign in")
    return RedirectResponse("/admin/employees", status_code=303)


@router.get("/employees/{number}")
def employee_edit(request: Request, number: int, session: Session = Depends(db)) -> Response:
    return _edit(request, session, employees.get_employee(session, number))


@router.post("/employees/{number}", dependencies=[Depends(auth.check_csrf)])
def employee_update(request: Request, number: int, values: dict[str, str] = Depends(forms.form_values),
                    session: Session = Depends(db), me: Employee = Depends(auth.require_admin)) -> Response:
    employee = employees.get_employee(session, number)
    admin = forms.checked(values, "admin")
    try:
        if employee.id == me.id and not admin:
            raise FieldError("admin", "you cannot take away your own admin rights: another admin can")
        employees.update_employee(session, number, name=forms.text(values, "name"), email=forms.text(values, "email"),
                                 admin=admin, delivery=forms.text(values, "delivery") or "forward")
    except InputError as err:
        errors = forms.refused(session, err)
        return _edit(request, session, employee, {**forms.kept(values), "number": str(number)}, errors,
                     status_code=422)
    session.commit()
    flash(request, f"Employee {number} saved")
    return RedirectResponse(f"/admin/employees/{number}", status_code=303)


@router.post("/employees/{number}/password", dependencies=[Depends(auth.check_csrf)])
def employee_password(request: Request, number: int, values: dict[str, str] = Depends(forms.form_values),
                      session: Session = Depends(db), me: Employee = Depends(auth.require_admin)) -> Response:
    """Set (never show) the sign-in password; the employee's other sessions are signed out by the change."""
    employee = employees.get_employee(session, number)
    try:
        with validation.about("new_password"):
            passwords.set_password(session, number, values.get("new_password", ""))
    except InputError as err:
        return _edit(request, session, employee, errors=forms.refused(session, err), status_code=422)
    session.commit()
    if employee.id == me.id:  # a new password ends every session of its owner: keep this one signed in
        auth.sign_in(request, session, employee)
        session.commit()
    flash(request, f"Employee {number}: password set")
    return RedirectResponse(f"/admin/employees/{number}", status_code=303)


def _set_active(request: Request, session: Session, me: Employee, number: int, active: bool,
                values: dict[str, str]) -> Response:
    employee = employees.get_employee(session, number)
    if employee.id == me.id and not active:
        errors = {"active": "you cannot deactivate yourself: another admin can"}
        return _edit(request, session, employee, errors=errors, status_code=422)
    employees.set_active(session, number, active)
    session.commit()
    flash(request, f"Employee {number}: {'active' if active else 'inactive'}")
    back = "/admin/employees" if values.get("back") == "list" else f"/admin/employees/{number}"
    return RedirectResponse(back, status_code=303)


@router.post("/employees/{number}/deactivate", dependencies=[Depends(auth.check_csrf)])
def employee_deactivate(request: Request, number: int, values: dict[str, str] = Depends(forms.form_values),
                        session: Session = Depends(db), me: Employee = Depends(auth.require_admin)) -> Response:
    """They can no longer sign in; their mail goes to Unassigned messages."""
    return _set_active(request, session, me, number, False, values)


@router.post("/employees/{number}/activate", dependencies=[Depends(auth.check_csrf)])
def employee_activate(request: Request, number: int, values: dict[str, str] = Depends(forms.form_values),
                      session: Session = Depends(db), me: Employee = Depends(auth.require_admin)) -> Response:
    return _set_active(request, session, me, number, True, values)
