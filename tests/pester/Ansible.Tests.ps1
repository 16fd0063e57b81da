#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.0.0' }
<#
    What only Windows can show about the Ansible target: the role's script, run the way
    ansible.windows.win_powershell runs it (its own runspace, $Ansible defined, the script added
    as text, -WhatIf and -Confirm:$false added because it supports ShouldProcess), sets
    $Ansible.Changed, .Failed and .Result as the role promises. NOT RUN on psgen's own Linux CI;
    run by .github/workflows/windows.yml.

    psgen build tests/pester/fleet-fixture.yaml --target ansible --out-dir out/pester-ansible
    Invoke-Pester -Path tests/pester/Ansible.Tests.ps1 -Output Detailed
#>

BeforeAll {
    $script:Script = Join-Path -Path $PSScriptRoot -ChildPath '..\..\out\pester-ansible\roles\fleet-fixture\files\fleet-fixture.ps1'
    $script:Script = (Resolve-Path -LiteralPath $script:Script).Path
    $script:Work = Join-Path -Path $env:TEMP -ChildPath 'psgen-fleet-pester'

    function Reset-Fixture {
        Remove-Item -LiteralPath $script:Work -Recurse -Force -ErrorAction SilentlyContinue
        Remove-Item -LiteralPath (Join-Path -Path $env:TEMP -ChildPath 'psgen\fleet-fixture') -Recurse -Force -ErrorAction SilentlyContinue
        Remove-Item -LiteralPath 'Env:\PSGEN_PESTER_THROW' -ErrorAction SilentlyContinue
    }

    function Invoke-AsWinPowerShell {
        param(
            [hashtable]$Parameters = @{},

            [switch]$CheckMode
        )
        # What win_powershell does with the role's file (ansible.windows 3.x, same process).
        $runspace = [System.Management.Automation.Runspaces.RunspaceFactory]::CreateRunspace($Host)
        $runspace.Open()
        try {
            $ps = [PowerShell]::Create()
            $ps.Runspace = $runspace
            $ps.Runspace.SessionStateProxy.SetVariable('Ansible', [pscustomobject]@{
                    PSTypeName = 'Ansible.Windows.WinPowerShell.Module'
                    CheckMode = [bool]$CheckMode
                    Verbosity = 0
                    Result = @{}
                    Diff = @{}
                    Changed = $true
                    Failed = $false
                    Tmpdir = $env:TEMP
                })
            $ps.Runspace.SessionStateProxy.SetVariable('ErrorActionPreference', [System.Management.Automation.ActionPreference]'Continue')
            $null = $ps.AddScript([System.IO.File]::ReadAllText($script:Script))
            $all = @{}
            foreach ($entry in $Parameters.GetEnumerator()) {
                $all[$entry.Key] = $entry.Value
            }
            $all.Confirm = $false
            $all.WhatIf = [bool]$CheckMode
            $null = $ps.AddParameters($all)
            $output = $ps.Invoke()
            $read = [PowerShell]::Create()
            $read.Runspace = $runspace
            $ansible = $read.AddScript('$Ansible').Invoke()[0]
            return [pscustomobject]@{
                Ansible = $ansible
                Output = @($output)
                Errors = @($ps.Streams.Error)
            }
        }
        finally {
            $runspace.Dispose()
        }
    }
}

Describe 'Ansible role script under win_powershell on Windows' {
    BeforeEach {
        Reset-Fixture
    }

    AfterAll {
        Reset-Fixture
    }

    It 'Fix on a drifted host: changed, not failed, result is the -Json document' {
        $run = Invoke-AsWinPowerShell -Parameters @{ Mode = 'Fix' }
        $run.Errors | Should -BeNullOrEmpty
        $run.Output | Should -BeNullOrEmpty
        $run.Ansible.Changed | Should -BeTrue
        $run.Ansible.Failed | Should -BeFalse
        $run.Ansible.Result.schema | Should -Be 1
        $run.Ansible.Result.exit_code | Should -Be 0
        ($run.Ansible.Result.steps | Where-Object -FilterScript { $_.id -eq 'marker' }).status | Should -Be 'fixed'
        Test-Path -LiteralPath (Join-Path -Path $script:Work -ChildPath 'marker.txt') | Should -BeTrue
    }

    It 'a second Fix run is not changed' {
        $null = Invoke-AsWinPowerShell -Parameters @{ Mode = 'Fix' }
        $run = Invoke-AsWinPowerShell -Parameters @{ Mode = 'Fix' }
        $run.Ansible.Changed | Should -BeFalse
        $run.Ansible.Failed | Should -BeFalse
    }

    It 'check mode (-WhatIf) reports what Fix would change and changes nothing' {
        $run = Invoke-AsWinPowerShell -Parameters @{ Mode = 'Fix' } -CheckMode
        $run.Ansible.Changed | Should -BeTrue
        $run.Ansible.Failed | Should -BeFalse
        $run.Ansible.Result.whatIf | Should -BeTrue
        Test-Path -LiteralPath (Join-Path -Path $script:Work -ChildPath 'marker.txt') | Should -BeFalse
    }

    It 'Mode Check: drift is exit 1, neither changed nor failed' {
        $run = Invoke-AsWinPowerShell -Parameters @{ Mode = 'Check' }
        $run.Ansible.Changed | Should -BeFalse
        $run.Ansible.Failed | Should -BeFalse
        $run.Ansible.Result.exit_code | Should -Be 1
    }

    It 'a fix that fails is rolled back: failed (exit 2), and the host is as before' {
        $env:PSGEN_PESTER_THROW = '1'
        $run = Invoke-AsWinPowerShell -Parameters @{ Mode = 'Fix' }
        $run.Ansible.Failed | Should -BeTrue
        $run.Ansible.Result.exit_code | Should -Be 2
        Test-Path -LiteralPath (Join-Path -Path $script:Work -ChildPath 'marker.txt') | Should -BeFalse
    }

    It 'run standalone (no $Ansible), the same file exits with the script exit code' {
        $exe = (Get-Process -Id $PID).Path
        $null = & $exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File $script:Script -Mode Check
        $LASTEXITCODE | Should -Be 1
    }
}
