// @vitest-environment jsdom
import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { PeerBadges } from "./controls";

afterEach(cleanup);

describe("PeerBadges", () => {
  it("shows what the other side turned off, and nothing when all is on", () => {
    const { rerender } = render(<PeerBadges peer={{ mic: false, camera: true }} />);
    expect(screen.getByTestId("peer-muted").textContent).toBe("muted");
    expect(screen.queryByTestId("peer-camera-off")).toBeNull();
    rerender(<PeerBadges peer={{ mic: false, camera: false }} />);
    expect(screen.getByTestId("peer-camera-off").textContent).toBe("camera off");
    rerender(<PeerBadges peer={{ mic: true, camera: true }} />);
    expect(screen.queryByRole("status")).toBeNull();
    rerender(<PeerBadges peer={null} />);
    expect(screen.queryByRole("status")).toBeNull();
  });
});
