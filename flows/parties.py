"""Customers and the people we write to at each of them."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flows.base import Base, Id, enum_column


class ContactRole(enum.Enum):
    SIGNER = "signer"    # signs quotes
    BILLING = "billing"  # receives invoices, reminders, statements
    OTHER = "other"


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    country: Mapped[str] = mapped_column(String(2))          # ISO 3166-1 alpha-2
    language: Mapped[str] = mapped_column(String(16), default="en")  # locale of their documents
    currency: Mapped[str] = mapped_column(String(3))
    tax_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]

    contacts: Mapped[list[Contact]] = relationship(back_populates="customer", order_by="Contact.id")

    def contact(self, role: ContactRole) -> Contact | None:
        return next((c for c in self.contacts if c.role is role), None)


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("customer_id", "email", "role"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), index=True)
    role: Mapped[ContactRole] = mapped_column(enum_column(ContactRole))
    bounced_at: Mapped[datetime | None]  # set when mail to them bounces for good

    customer: Mapped[Customer] = relationship(back_populates="contacts")
