/**
 * A node script that connects a real Puppeteer to the endpoint given as its argument, makes
 * one call, prints "connected" and idles: an agent process to kill (test/integration/
 * agent-vanish.test.ts, bench/agent-vanish.ts). Run with `node --input-type=module -e`.
 */
export const PUPPETEER_AGENT = `
import puppeteer from 'puppeteer-core';
const browser = await puppeteer.connect({ browserWSEndpoint: process.argv[1], defaultViewport: null });
const [page] = await browser.pages();
await page.evaluate(() => 1);
console.log('connected');
setInterval(() => {}, 1000);`;
