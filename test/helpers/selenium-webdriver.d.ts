// selenium-webdriver ships no types and @types/selenium-webdriver is not installed: the test
// uses it untyped.
declare module 'selenium-webdriver';
declare module 'selenium-webdriver/chrome.js';
