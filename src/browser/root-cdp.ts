/** The pipe's root session as the browser side uses it (cdp/ CdpPipeMux is one). */
export interface RootCdp {
  send(method: string, params?: object, sessionId?: string): Promise<any>;
  on(event: 'event', listener: (method: string, params: any, sessionId: string | undefined) => void): unknown;
  once(event: 'closed', listener: () => void): unknown;
  /** The page an agent acts on changed (null: no agent connected). */
  on(event: 'agentPage', listener: (targetId: string | null) => void): unknown;
}
