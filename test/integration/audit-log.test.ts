import assert from 'node:assert/strict';
import { createAuditLog } from '../../src/core/audit-log.ts';
import type { Db } from '../../src/db/create-db.ts';
import { createTestDb, type TestDb } from '../support/test-db.ts';

// The audit trail keeps what it was given, pages newest first, filters, and cannot be rewritten.

describe('audit log', function () {
  let testDb: TestDb;
  let db: Db;

  before(async function () {
    testDb = await createTestDb('audit');
    db = testDb.db;
  });
  after(async function () {
    await testDb?.drop();
  });

  it('records entries, pages them newest first and filters by project, actor and action', async function () {
    const audit = createAuditLog({ db });
    const alice = { kind: 'user' as const, userId: '00000000-0000-4000-8000-00000000000a', login: 'alice' };
    const bob = { kind: 'api_key' as const, userId: '00000000-0000-4000-8000-00000000000b', login: 'bob', keyId: 'k1' };
    const project = '00000000-0000-4000-8000-0000000000f1';
    for (let i = 0; i < 5; i++) await audit.record({ actor: alice, action: 'task.cancel', projectId: project, target: { type: 'task', id: `t${i}` } });
    await audit.record({ actor: bob, action: 'member.add', projectId: project, detail: { login: 'carol', role: 'viewer' }, requestId: 'r1', ip: '127.0.0.1' });
    await audit.record({ actor: alice, action: 'auth.sign_in', detail: { provider: 'github' } });

    const first = await audit.list({ projectId: project, limit: 4 });
    assert.equal(first.entries.length, 4);
    assert.equal(first.entries[0]!.action, 'member.add');
    assert.deepEqual(first.entries[0]!.actor, { kind: 'api_key', userId: bob.userId, login: 'bob', keyId: 'k1' });
    assert.deepEqual(first.entries[0]!.detail, { login: 'carol', role: 'viewer' });
    assert.ok(first.nextCursor);
    const second = await audit.list({ projectId: project, limit: 4, before: first.nextCursor! });
    assert.deepEqual(second.entries.map((e) => e.target?.id), ['t1', 't0']);
    assert.equal(second.nextCursor, null);

    assert.deepEqual((await audit.list({ actorUserId: alice.userId, action: 'auth.sign_in', limit: 10 })).entries.map((e) => e.detail), [{ provider: 'github' }]);
    assert.equal((await audit.list({ limit: 100 })).entries.length, 7);
  });

  it('refuses to update or delete an entry', async function () {
    await assert.rejects(db.updateTable('audit_log').set({ action: 'auth.logout' }).execute(), /append-only/);
    await assert.rejects(db.deleteFrom('audit_log').execute(), /append-only/);
  });
});
