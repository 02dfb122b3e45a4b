import { Empty } from '../common/bits';

export function NotFound() {
  return (
    <>
      <h1>Page not found</h1>
      <Empty title="There is no such page in the portal.">
        Use the navigation above, or go to the <a href="/ui/">overview</a>.
      </Empty>
    </>
  );
}
