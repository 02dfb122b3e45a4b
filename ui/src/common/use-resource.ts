// Loads what a screen shows, with the loading and error states every screen renders the same way.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

export interface Resource<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
}

export function useResource<T>(load: () => Promise<T>, deps: unknown[]): Resource<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  // The caller names what the load depends on, as with useEffect.
  const run = useCallback(() => {
    const mine = ++generation.current;
    setLoading(true);
    load().then(
      (value) => {
        if (mine !== generation.current) return;
        setData(value);
        setError(undefined);
        setLoading(false);
      },
      (err: unknown) => {
        if (mine !== generation.current) return;
        setError(err instanceof Error ? err : new Error(String(err)));
        setLoading(false);
      },
    );
  }, deps);
  useEffect(() => {
    run();
    return () => {
      generation.current++;
    };
  }, [run]);
  return { data, error, loading, reload: run };
}

/** Calls `tick` every `ms` while the tab is visible (a hidden tab does not poll the API). */
export function useInterval(tick: () => void, ms: number): void {
  const latest = useRef(tick);
  latest.current = tick;
  useEffect(() => {
    const id = window.setInterval(() => {
      if (document.visibilityState === 'visible') latest.current();
    }, ms);
    return () => window.clearInterval(id);
  }, [ms]);
}

export interface Pages<P> {
  /** The first page, with its loading and error states; reload() starts over from it. */
  first: Resource<P>;
  pages: P[];
  /** Where the next page starts; null or undefined once the last is loaded. */
  cursor: string | null | undefined;
  /** The error of the last "Load more", if it failed. */
  moreError: Error | undefined;
  /** Loads the page at `cursor` after those shown (the LoadMore button's onMore). */
  more: (cursor: string) => Promise<void>;
}

/** A cursor-paged list: its first page loaded like any resource, and more pages on demand. */
export function usePages<P extends { next_cursor: string | null }>(
  load: (cursor: string | undefined) => Promise<P>,
  deps: unknown[],
): Pages<P> {
  const [pages, setPages] = useState<P[]>([]);
  const [moreError, setMoreError] = useState<Error | undefined>(undefined);
  const first = useResource(async () => {
    const page = await load(undefined);
    setPages([page]);
    return page;
  }, deps);
  const more = async (cursor: string) => {
    try {
      const page = await load(cursor);
      setPages((p) => [...p, page]);
      setMoreError(undefined);
    } catch (err) {
      setMoreError(err instanceof Error ? err : new Error(String(err)));
    }
  };
  return { first, pages, cursor: pages[pages.length - 1]?.next_cursor, moreError, more };
}
