import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Builder, By } from 'selenium-webdriver';
import chrome from 'selenium-webdriver/chrome.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { startPageServer, type PageServer } from '../helpers/pages.js';
import { api, tryWs, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

/**
 * API.md 3.1 `debug_port` (issue 15.3): Selenium with chromedriver drives a session through
 * the session's own Chrome-compatible port (`goog:chromeOptions.debuggerAddress`).
 */
let d: RunningDaemon;
let pages: PageServer;
const leaks = new LeakTracker();

beforeAll(async () => {
  [d, pages] = await Promise.all([startDaemon(), startPageServer()]);
});

afterAll(async () => {
  await d?.cleanup();
  await pages?.close();
  expect(leaks.leftovers()).toEqual([]);
});

async function attachRows(sessionId: string): Promise<any[]> {
  const { body } = await api(d.url, `/audit?session_id=${sessionId}&type=cloud_browser_agent_attach`);
  return body.events.map((e: any) => (typeof e.detail === 'string' ? JSON.parse(e.detail) : e.detail));
}

describe('Selenium through a debug port', () => {
  it('chromedriver with debuggerAddress navigates, finds an element, types and reads back; the audit shows the attach', async () => {
    const created = await api(d.url, '/devtools/browser?debug_port=true', { method: 'POST' });
    expect(created.status).toBe(200);
    const id = created.body.sessionId;
    const port: number = (await api(d.url, `/session/${id}`)).body.debug_port;
    expect(port).toBeGreaterThan(0);

    const options = new chrome.Options();
    options.debuggerAddress(`127.0.0.1:${port}`);
    let driver: any;
    try {
      driver = await new Builder().forBrowser('chrome').setChromeOptions(options).setChromeService(new chrome.ServiceBuilder('/usr/bin/chromedriver')).build();
      await driver.get(`${pages.url}/form`);
      expect(await driver.getTitle()).toBe('form');
      const input = await driver.findElement(By.id('text'));
      await input.sendKeys('typed by selenium');
      expect(await input.getAttribute('value')).toBe('typed by selenium');
      await driver.findElement(By.id('btn')).click();
      expect(await driver.findElement(By.id('out')).getText()).toBe('clicked 1');

      // chromedriver holds the lease meanwhile: another client gets 409 on the port and the main one.
      expect((await api(d.url, `/session/${id}`)).body.attachment).toBe('agent');
      const second = await tryWs(`ws://127.0.0.1:${port}/devtools/browser/${id}`);
      expect(second.kind === 'refused' && second.status).toBe(409);
      if (second.kind === 'refused') expect(second.body.error.code).toBe('session_attached');
    } finally {
      await driver?.quit();
    }
    const rows = await attachRows(id);
    expect(rows.some((r) => r.debug_port === port)).toBe(true);
    // chromedriver's quit detaches; the session (auto_close=false) stays for the next client.
    await waitFor('attachment none', async () => (await api(d.url, `/session/${id}`)).body.attachment === 'none');
    expect((await api(d.url, `/session/${id}`)).body.state).toBe('ready');
    await api(d.url, `/devtools/browser/${id}`, { method: 'DELETE' });
  });
});
