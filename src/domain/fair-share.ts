// Max-min fair division of a whole number of units (claims, send slots) among claimants that each
// want some amount. Pure.
//
// Every claimant gets what it wants if it wants no more than an equal share; what the modest ones
// leave is divided again among the rest, until the units or the wants run out. Units that do not
// divide evenly go to the claimants first in the given order, so a caller that rotates the order
// from one round to the next spreads them over everyone.

/** Splits `total` among `wants` (each ≥ 0); returns each one's part, in the same order. */
export function fairShares(wants: readonly number[], total: number): number[] {
  const parts = wants.map(() => 0);
  let left = Math.max(0, Math.floor(total));
  let open = wants.map((_, i) => i).filter((i) => (wants[i] as number) > 0);
  while (left > 0 && open.length > 0) {
    const each = Math.floor(left / open.length);
    if (each === 0) {
      // Fewer units than claimants: one each, in order.
      for (const i of open) {
        if (left === 0) break;
        parts[i] = (parts[i] as number) + 1;
        left--;
      }
      break;
    }
    const still: number[] = [];
    for (const i of open) {
      const want = (wants[i] as number) - (parts[i] as number);
      const give = Math.min(want, each);
      parts[i] = (parts[i] as number) + give;
      left -= give;
      if (give < want) still.push(i);
    }
    open = still;
  }
  return parts;
}

/**
 * Two levels: `total` is divided fairly among the groups (accounts), and each group's part among
 * its members (endpoints). `groups` lists each group's members' wants.
 */
export function fairSharesByGroup(groups: readonly (readonly number[])[], total: number): number[][] {
  const groupParts = fairShares(
    groups.map((members) => members.reduce((sum, want) => sum + want, 0)),
    total,
  );
  return groups.map((members, g) => fairShares(members, groupParts[g] as number));
}
