"""Employees: their numbers (in every numbered address already sent, so never changed), names, addresses,
hand-off mode and whether they are active or admins."""

from __future__ import annotations

from sqlmodel import Session, select

from bridge import audit
from bridge.accounts import web_sessions
from bridge.accounts.validation import about, check_name
from bridge.errors import FieldError, InputError, NotFound
from bridge.input_checks import check_address
from models import Employee

# How routed replies reach the employee (the `delivery` setting); each mode is a file in bridge/inbound/hand_off/.
HAND_OFF_MODES = ("forward", "imap", "none")


def _delivery(mode: str) -> str:
    if mode not in HAND_OFF_MODES:
        raise InputError(f"delivery {mode!r} is not one of: {', '.join(HAND_OFF_MODES)}")
    return mode


def set_delivery(session: Session, number: int, mode: str) -> Employee:
    employee = get_employee(session, number)
    employee.delivery = _delivery(mode)
    session.add(employee)
    audit.record(session, "account", f"employee {number}", f"hand-off set to {employee.delivery}")
    return employee


def set_active(session: Session, number: int, active: bool) -> Employee:
    employee = get_employee(session, number)
    employee.active = active
    session.add(employee)
    if not active:  # a cookie from before stays dead after a re-activation
        web_sessions.end_all(session, employee.id)
    audit.record(session, "account", f"employee {number}", "activated" if active else "deactivated")
    return employee


def add_employee(session: Session, number: int, name: str, email: str, *, admin: bool = False,
                 active: bool = True, delivery: str = "forward") -> Employee:
    if number < 0 or number > 999_999_999:
        raise FieldError("number", "employee number must be between 0 and 999999999")
    if session.exec(select(Employee).where(Employee.number == number)).first():
        raise FieldError("number", f"employee number {number} exists already")
    employee = _save_employee(session, Employee(number=number, active=active), name, email, admin, delivery)
    audit.record(session, "account", f"employee {number}", "added" + (" as an admin" if admin else ""))
    return employee


def update_employee(session: Session, number: int, *, name: str, email: str, admin: bool,
                    delivery: str) -> Employee:
    """Edit an employee; the number stays (it is in every numbered address already sent)."""
    employee = _save_employee(session, get_employee(session, number), name, email, admin, delivery)
    audit.record(session, "account", f"employee {number}", "changed" + (" (admin)" if admin else ""))
    return employee


def _save_employee(session: Session, employee: Employee, name: str, email: str, admin: bool,
                   delivery: str) -> Employee:
    with about("name"):
        name = check_name(name, "name")
    with about("email"):
        email = check_address(email, "email")
    with about("delivery"):
        delivery = _delivery(delivery)
    employee.name, employee.email, employee.admin, employee.delivery = name, email, admin, delivery
    session.add(employee)
    session.flush()
    return employee


def get_employee(session: Session, number: int) -> Employee:
    employee = session.exec(select(Employee).where(Employee.number == number)).first()
    if employee is None:
        raise NotFound(f"no employee number {number}")
    return employee


def employee_json(e: Employee) -> dict[str, object]:
    return {"number": e.number, "name": e.name, "email": e.email, "active": e.active, "admin": e.admin,
            "delivery": e.delivery}
