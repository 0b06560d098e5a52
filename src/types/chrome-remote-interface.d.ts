// The little of chrome-remote-interface we use (it ships no types).
declare module 'chrome-remote-interface' {
  interface Client {
    send(method: string, params?: object, sessionId?: string): Promise<any>;
    on(event: string, listener: (params: any, sessionId?: string) => void): Client;
    close(): Promise<void>;
  }
  function CDP(options: { target: string; local?: boolean }): Promise<Client>;
  namespace CDP {
    export type { Client };
  }
  export default CDP;
}
