import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';

// The shared Postgres must stay up for everyone else, so the outage is a trigger in this file's own database: while
// a flag row exists, every change of a task's status fails (counted by a sequence, which a rollback does not undo).
describe('bookkeeping outlasts a database outage', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let token: string;
  let projectId: string;

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack();
    token = await stack.token('alice');
    projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'outage' } })).body.id;
    const reg = await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } });
    assert.equal(reg.status, 201, reg.text);
    const db = stack.world.db;
    await sql`create table outage_flag (on_since timestamptz not null default now())`.execute(db);
    await sql`create sequence outage_failures`.execute(db);
    await sql`
      create function outage_fail() returns trigger language plpgsql as $$
      begin
        if exists (select 1 from outage_flag) then
          perform nextval('outage_failures');
          raise exception 'injected outage';
        end if;
        return new;
      end $$`.execute(db);
    await sql`create trigger outage_on_status before update of status on tasks for each row execute function outage_fail()`.execute(db);
  });

  after(async function () {
    await stack?.stop();
    await oracle?.stop();
  });

  const failures = async () =>
    Number((await sql<{ n: string }>`select case when is_called then last_value else 0 end as n from outage_failures`.execute(stack.world.db)).rows[0]!.n);

  it('recordStatus keeps retrying past 10 failures; once the database is back the task ends succeeded, row and events terminal', async function () {
    await sql`insert into outage_flag default values`.execute(stack.world.db);
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: 'after the outage' } } });
    assert.equal(submit.status, 202, submit.text);
    const id = submit.body.id as string;

    // The old cap was 10 attempts; 14 failures prove there is none (test retries back off to 400 ms).
    const deadline = Date.now() + 60_000;
    while ((await failures()) < 14) {
      assert.ok(Date.now() < deadline, `only ${await failures()} failures in 60 s`);
      await sleep(100);
    }
    const handle = stack.world.client.workflow.getHandle(`task-${id}`);
    assert.equal((await handle.describe()).status.name, 'RUNNING', 'the workflow is still waiting, not failed');
    assert.equal((await stack.api('GET', `/v1/tasks/${id}`, { token })).body.status, 'queued');
    assert.equal(oracle.callCount('echo'), 0, 'nothing ran before its routing was recorded');

    await sql`delete from outage_flag`.execute(stack.world.db);
    const task = await stack.waitForStatus(token, id, ['succeeded', 'failed'], 30_000);
    assert.equal(task.status, 'succeeded', JSON.stringify(task));
    assert.deepEqual(task.result.content, [{ type: 'text', text: 'after the outage' }]);
    await handle.result();
    assert.equal((await handle.describe()).status.name, 'COMPLETED');

    const row = await stack.world.db.selectFrom('tasks').select(['status', 'finished_at']).where('id', '=', id).executeTakeFirstOrThrow();
    assert.equal(row.status, 'succeeded');
    assert.ok(row.finished_at, 'the row is finished');
    const events = await stack.world.events.list(id, 0);
    assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), 'seqs contiguous: the failed writes left no gap');
    assert.deepEqual(events.filter((e) => e.type === 'status').map((e) => e.data.status), ['queued', 'routing', 'running', 'succeeded'], 'each transition logged once');
    assert.equal(events.filter((e) => e.type === 'result').length, 1);
  });
});
