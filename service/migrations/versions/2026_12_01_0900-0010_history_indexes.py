"""indexes so that no read grows with history: an entity's audit rows, a request's next round

The cycle-cancelled check, a request's timeline and the unrouted steps each looked up
audit rows by entity and id with a scan of the whole log; the next round of a request
was found by a scan of every request.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 09:00:00+00:00
"""
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index('ix_audit_event_entity', ['entity', 'entity_id', 'action'], unique=False)
    with op.batch_alter_table('approval_request', schema=None) as batch_op:
        batch_op.create_index('ix_approval_request_previous_id', ['previous_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('approval_request', schema=None) as batch_op:
        batch_op.drop_index('ix_approval_request_previous_id')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_entity')
