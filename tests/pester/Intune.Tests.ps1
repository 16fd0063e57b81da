#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }
<#
    What only Windows can show about the Intune target: the detection/remediation pair really
    behaves as Intune needs, run the way the Intune Management Extension runs it (a child
    powershell.exe -File, stdout and stderr captured apart). NOT RUN on psgen's own Linux CI;
    run by .github/workflows/windows.yml.

    psgen build tests/pester/fleet-fixture.yaml --target intune --out-dir out/pester-intune
    Invoke-Pester -Path tests/pester/Intune.Tests.ps1 -Output Detailed
#>

BeforeAll {
    $script:Out = Join-Path -Path $PSScriptRoot -ChildPath '..\..\out\pester-intune'
    $script:Detect = (Resolve-Path -LiteralPath (Join-Path -Path $script:Out -ChildPath 'fleet-fixture.detect.ps1')).Path
    $script:Remediate = (Resolve-Path -LiteralPath (Join-Path -Path $script:Out -ChildPath 'fleet-fixture.remediate.ps1')).Path
    $script:Work = Join-Path -Path $env:TEMP -ChildPath 'psgen-fleet-pester'
    $script:WindowsPowerShell = Join-Path -Path $env:windir -ChildPath 'System32\WindowsPowerShell\v1.0\powershell.exe'
    $script:WindowsPowerShell32 = Join-Path -Path $env:windir -ChildPath 'SysWOW64\WindowsPowerShell\v1.0\powershell.exe'

    function Reset-Fixture {
        Remove-Item -LiteralPath $script:Work -Recurse -Force -ErrorAction SilentlyContinue
        Remove-Item -LiteralPath (Join-Path -Path $env:TEMP -ChildPath 'psgen\fleet-fixture') -Recurse -Force -ErrorAction SilentlyContinue
    }

    function Invoke-IntuneScript {
        param(
            [Parameter(Mandatory = $true)]
            [string]$Path,

            [string]$Exe = $script:WindowsPowerShell,

            [hashtable]$Environment = @{}
        )
        # As the Intune Management Extension does: a child process, output and error apart.
        $info = New-Object -TypeName 'System.Diagnostics.ProcessStartInfo'
        $info.FileName = $Exe
        $info.Arguments = ('-NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass -File "{0}"' -f $Path)
        $info.UseShellExecute = $false
        $info.RedirectStandardOutput = $true
        $info.RedirectStandardError = $true
        $info.CreateNoWindow = $true
        foreach ($name in @('PSGEN_PESTER_THROW', 'PSGEN_PESTER_LONG', 'PSGEN_PESTER_RESTART')) {
            $null = $info.EnvironmentVariables.Remove($name)
        }
        foreach ($entry in $Environment.GetEnumerator()) {
            $info.EnvironmentVariables[$entry.Key] = $entry.Value
        }
        $process = [System.Diagnostics.Process]::Start($info)
        $stdout = $process.StandardOutput.ReadToEndAsync()
        $stderr = $process.StandardError.ReadToEnd()
        $process.WaitForExit()
        $lines = @($stdout.Result -split "`r?`n" | Where-Object -FilterScript { $_ -ne '' })
        return [pscustomobject]@{
            ExitCode = $process.ExitCode
            Lines = $lines
            Stderr = $stderr
        }
    }

    function Assert-IntuneOutput {
        param(
            [Parameter(Mandatory = $true)]
            [object]$Run
        )
        # Exactly one ASCII line within Intune's 2,048 characters; nothing on stderr.
        $Run.Lines.Count | Should -Be 1
        $Run.Lines[0].Length | Should -BeLessOrEqual 2048
        $Run.Lines[0] | Should -Match '^[\x20-\x7E]+$'
        $Run.Stderr | Should -BeNullOrEmpty
    }
}

Describe 'Intune Remediations pair on Windows' {
    BeforeEach {
        Reset-Fixture
    }

    AfterAll {
        Reset-Fixture
    }

    It 'detection reports drift with exit 1 and one summary line' {
        $run = Invoke-IntuneScript -Path $script:Detect
        $run.ExitCode | Should -Be 1
        Assert-IntuneOutput -Run $run
        $run.Lines[0] | Should -Match '^fleet-fixture detect: DRIFT \(exit 1; '
        $run.Lines[0] | Should -Match '\[drift\] Marker file exists'
        $run.Lines[0] | Should -Match 'log: .*psgen\.log$'
        $run.Lines[0] | Should -Not -Match 'noise'
        Test-Path -LiteralPath (Join-Path -Path $script:Work -ChildPath 'marker.txt') | Should -BeFalse
    }

    It 'remediation fixes with exit 0, then detection is compliant' {
        $fix = Invoke-IntuneScript -Path $script:Remediate
        $fix.ExitCode | Should -Be 0
        Assert-IntuneOutput -Run $fix
        $fix.Lines[0] | Should -Match '^fleet-fixture remediate: FIXED '
        Test-Path -LiteralPath (Join-Path -Path $script:Work -ChildPath 'marker.txt') | Should -BeTrue
        $again = Invoke-IntuneScript -Path $script:Detect
        $again.ExitCode | Should -Be 0
        Assert-IntuneOutput -Run $again
        $again.Lines[0] | Should -Match '^fleet-fixture detect: COMPLIANT '
    }

    It 'a 32-bit host re-launches itself in 64-bit PowerShell through sysnative' -Skip:(-not [Environment]::Is64BitOperatingSystem) {
        $null = Invoke-IntuneScript -Path $script:Remediate
        # The bitness step is compliant only in a 64-bit process.
        $run = Invoke-IntuneScript -Path $script:Detect -Exe $script:WindowsPowerShell32
        $run.ExitCode | Should -Be 0
        Assert-IntuneOutput -Run $run
        $run.Lines[0] | Should -Match '^fleet-fixture detect: COMPLIANT '
        $run.Lines[0] | Should -Not -Match '32-bit'
    }

    It 'caps the summary at 2,048 characters with the marker, never inside an escape' {
        $run = Invoke-IntuneScript -Path $script:Detect -Environment @{ PSGEN_PESTER_LONG = '1' }
        $run.ExitCode | Should -Be 1
        Assert-IntuneOutput -Run $run
        $line = $run.Lines[0]
        $line | Should -Match ([regex]::Escape(' | ...[truncated, see log] | log: '))
        $line | Should -Match ([regex]::Escape('Caf\u00e9 \u2019quoted\u2019'))
        # Every \u is a whole escape: four hex digits follow.
        $line | Should -Not -Match '\\u(?![0-9a-f]{4})'
        # Most important first: the failed/drift items come before the truncation.
        $line.IndexOf('[drift] Marker file exists') | Should -BeLessThan $line.IndexOf('...[truncated')
    }

    It 'a check that throws is in the summary, and stderr stays empty' {
        $run = Invoke-IntuneScript -Path $script:Detect -Environment @{ PSGEN_PESTER_THROW = '1' }
        $run.ExitCode | Should -Be 1
        Assert-IntuneOutput -Run $run
        $run.Lines[0] | Should -Match '\[failed\] A check that throws when asked to: .*boom from the fixture'
        $run.Lines[0].IndexOf('[failed]') | Should -BeLessThan $run.Lines[0].IndexOf('[drift]')
    }

    It 'a remediation that fails is rolled back (exit 2), still one line and no stderr' {
        $run = Invoke-IntuneScript -Path $script:Remediate -Environment @{ PSGEN_PESTER_THROW = '1' }
        $run.ExitCode | Should -Be 2
        Assert-IntuneOutput -Run $run
        $run.Lines[0] | Should -Match '^fleet-fixture remediate: FIX FAILED, ROLLED BACK '
        Test-Path -LiteralPath (Join-Path -Path $script:Work -ChildPath 'marker.txt') | Should -BeFalse
    }

    It 'a step that needs a restart says so in the summary' {
        $run = Invoke-IntuneScript -Path $script:Detect -Environment @{ PSGEN_PESTER_RESTART = '1' }
        Assert-IntuneOutput -Run $run
        $run.Lines[0] | Should -Match 'RESTART NEEDED: Marker file exists'
    }

    It 'the Graph body carries these exact scripts' {
        $body = Get-Content -LiteralPath (Join-Path -Path $script:Out -ChildPath 'fleet-fixture.intune.json') -Raw | ConvertFrom-Json
        $detect = [System.IO.File]::ReadAllBytes($script:Detect)
        [Convert]::ToBase64String($detect) | Should -BeExactly $body.detectionScriptContent
        $body.runAs32Bit | Should -BeFalse
    }
}
